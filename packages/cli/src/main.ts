import { readFileSync } from 'node:fs';
import { formatError, isOmniError } from '@omnistage/core';
import { helpText, parseCommandLine } from './args.js';
import { createCliLogger } from './logger.js';
import { stopSignalStatus } from './stop-signal.js';
import { agentCommand } from './commands/agent.js';
import { k8sCommand } from './commands/k8s.js';
import { planCommand } from './commands/plan.js';
import { runCommand } from './commands/run.js';
import { schemaCommand } from './commands/schema.js';
import { statusCommand } from './commands/status.js';
import { serveCommand } from './commands/serve.js';
import { upCommand } from './commands/up.js';
import { validateCommand } from './commands/validate.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

async function main(argv: string[]): Promise<number> {
  const { command, file, helpFor, values } = parseCommandLine(argv);
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (values.help || command === undefined || command === 'help') {
    // Asked for: help on stdout, exit 0. No command at all is a usage error: help on stderr, exit 2.
    const usageError = command === undefined && !values.help;
    (usageError ? process.stderr : process.stdout).write(`${helpText(VERSION, helpFor)}\n`);
    return usageError ? 2 : 0;
  }
  if (command === 'schema') return schemaCommand(values);
  const logger = createCliLogger(values['log-format'], values['log-level']);
  const pipelineFile = file as string;
  switch (command) {
    case 'validate':
      return validateCommand(pipelineFile, values, logger);
    case 'plan':
      return planCommand(pipelineFile, values, logger);
    case 'up':
      return upCommand(pipelineFile, values, logger);
    case 'run':
      return runCommand(pipelineFile, values, logger);
    case 'serve':
      return serveCommand(pipelineFile, values, logger);
    case 'agent':
      return agentCommand(pipelineFile, values, logger);
    case 'k8s':
      return k8sCommand(pipelineFile, values, logger);
    case 'status':
      return statusCommand(values, logger);
  }
}

// A reader that went away (`omnistage schema | head -1`, or a closed terminal: EIO after SIGHUP)
// is not an error: stop writing to it and carry on (a running pipeline still tears down), rather
// than dying with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'EIO' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  });
}

/**
 * Once the command is done, nothing of ours is left running (teardown completed), but a plugin's
 * code may be (a tap that ignored its replica's abort signal and still polls): it must not keep
 * the CLI alive. The timer does not itself hold the process; it only ends one that something else holds.
 */
function exitWhenDone(): void {
  setTimeout(() => process.exit(), 250).unref();
}

main(process.argv.slice(2))
  .finally(exitWhenDone)
  .then(
    (code) => {
      process.exitCode = code === 0 ? (stopSignalStatus() ?? 0) : code;
    },
    (err: unknown) => {
      if (isOmniError(err)) {
        process.stderr.write(`${formatError(err)}\n`);
        // Stopped by a signal (cancelled bring-up or run): 128 + signal; any other failure keeps its code.
        process.exitCode = err.code === 'OMNI_CANCELLED' ? (stopSignalStatus() ?? err.exitCode) : err.exitCode;
      } else {
        process.stderr.write(
          `error OMNI_INTERNAL: ${(err as Error)?.stack ?? String(err)}\n  hint: this is a bug in omnistage; please report it with the command you ran\n`,
        );
        process.exitCode = 1;
      }
    },
  );
