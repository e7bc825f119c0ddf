import { parseArgs, type ParseArgsConfig } from 'node:util';
import { OmniError, suggestions } from '@omnistage/core';

/** Options every command takes (issue: CLI). Kept in one table so `--help` and parsing agree. */
export const COMMON_OPTIONS = {
  platform: {
    type: 'string',
    description: 'cuda | rocm | npu | xpu | cpu (default: cuda when nvidia-smi is found, else cpu)',
  },
  engine: { type: 'string', description: "override every stage's engine (e.g. reference)" },
  model: { type: 'string', description: 'model id or local path, as `vllm serve <model>` takes it' },
  tokenizer: { type: 'string', description: 'tokenizer forwarded to stages that do not define their own' },
  'lock-dir': {
    type: 'string',
    description: 'device lock directory (env OMNISTAGE_LOCK_DIR; default <tmp>/omnistage-locks)',
  },
  events: { type: 'string', description: 'append every event to FILE as JSON lines' },
  'log-format': {
    type: 'string',
    description:
      'pretty | json (default pretty: plain lines, coloured on a terminal; json: every line of stderr is a JSON record)',
  },
  'log-level': { type: 'string', description: 'trace | debug | info | warn | error (default: info)' },
  'stage-init-timeout': {
    type: 'string',
    description: 'seconds one replica may take to lock, spawn and attach (default 300)',
  },
  'init-timeout': { type: 'string', description: 'seconds the whole pipeline may take to come up (default 600)' },
  'stage-overrides': { type: 'string', description: 'JSON or YAML: {"<stage_id>": {key: value}}' },
  'allow-overcommit': { type: 'boolean', description: 'over-committed devices warn instead of failing the plan' },
  mode: { type: 'string', description: 'select a `modes` entry of the pipeline file' },
  pipeline: {
    type: 'string',
    description: 'registered pipeline (topology) for a deploy file; wins over its `pipeline:` key and the model',
  },
  'strategy-config': {
    type: 'string',
    description: 'strategy FILE: parallel axes (tp/dp/pp/ep/stage_replica) per model_stage',
  },
  plugin: { type: 'string', multiple: true, description: 'load a plugin (npm package or path); repeatable' },
  'diffusion-batch-size': { type: 'string', description: 'requests batched together by diffusion engines (default 1)' },
  'no-inline': { type: 'boolean', description: 'never run an engine inside the orchestrator process' },
  'replica-logs': {
    type: 'string',
    description: "write each replica's output to DIR/stage<S>-replica<R>.log instead of the terminal",
  },
  json: { type: 'boolean', description: 'machine-readable output' },
  input: { type: 'string', multiple: true, description: '(run) a request input; repeatable' },
  'input-file': { type: 'string', description: '(run) one request per line of FILE' },
  out: {
    type: 'string',
    description:
      '(run) directory for image/audio/tensor outputs (default ./omnistage-out); (k8s) directory of the manifests (default ./omnistage-k8s)',
  },
  image: { type: 'string', description: '(k8s) container image with omnistage installed (default omnistage:latest)' },
  balance: {
    type: 'string',
    description: "(run, serve) round-robin | least-inflight: how requests spread over a stage's replicas",
  },
  host: { type: 'string', description: '(serve) address to listen on (default 127.0.0.1)' },
  port: { type: 'string', description: '(serve) port to listen on (default 8000; 0 picks a free one)' },
  'api-key': { type: 'string', description: '(serve) require "Authorization: Bearer KEY" (env OMNISTAGE_API_KEY)' },
  'metrics-public': { type: 'boolean', description: '(serve) /metrics needs no API key' },
  'speech-stage': {
    type: 'string',
    description:
      '(serve) stage id where /v1/audio/speech enters the pipeline (default: docs/serving.md "The speech stage")',
  },
  'allowed-origins': {
    type: 'string',
    description: '(serve) CORS: comma-separated origins browsers may call from, or * (default: none, CORS off)',
  },
  'max-inflight': { type: 'string', description: '(serve) generation requests in flight before 429 (default 1024)' },
  'max-inflight-per-replica': {
    type: 'string',
    description:
      "(serve) requests one replica serves at once, the rest queue at the stage (default 64, or the stage's max_num_seqs; a stage's runtime.max_inflight_per_replica wins)",
  },
  'request-timeout': {
    type: 'string',
    description: '(serve) seconds before a request is aborted with 504 (default: none)',
  },
  'drain-timeout': {
    type: 'string',
    description: '(serve) seconds in-flight requests may finish after SIGTERM/SIGINT (default 30)',
  },
  'served-model-name': {
    type: 'string',
    description:
      "(serve) model name clients send (default: --model, the file's model:, or the file name; pipeline.yaml: its folder's name)",
  },
  'max-body-mb': { type: 'string', description: '(serve) largest request body in MiB (default 64)' },
  head: {
    type: 'boolean',
    description:
      '(serve, up) head mode: publish the run in etcd; agents on other hosts attach replicas (docs/scale-out.md); (plan) show the plan as a head makes it',
  },
  etcd: {
    type: 'string',
    description: '(head, agent, status) etcd endpoint(s), e.g. http://10.0.0.5:2379 (comma-separated members)',
  },
  'local-stages': {
    type: 'string',
    description: '(head) stage ids this host runs itself, e.g. 0,2 (default: every stage whose num_replicas is not 0)',
  },
  'min-ready': {
    type: 'string',
    description:
      '(head) live replicas every stage needs before the pipeline is ready (overrides runtime.min_ready of the file, default 1)',
  },
  'control-host': {
    type: 'string',
    description: '(head) address of the TCP control port replicas dial (default 127.0.0.1)',
  },
  'control-port': {
    type: 'string',
    description: '(head) TCP control port (default 0: any free port; it is published in etcd)',
  },
  'cluster-secret-file': {
    type: 'string',
    description: '(head, agent) file with the shared secret replica tokens are derived from (mode 0600)',
  },
  insecure: {
    type: 'boolean',
    description: '(head) allow a non-loopback --control-host without --cluster-secret-file',
  },
  'tls-cert': {
    type: 'string',
    description:
      "(head, agent) mutual TLS on the control port: this side's PEM certificate (the head's names the address replicas dial)",
  },
  'tls-key': {
    type: 'string',
    description: '(head, agent) the PEM private key of --tls-cert (unencrypted, mode 0600)',
  },
  'tls-ca': {
    type: 'string',
    description:
      "(head, agent) PEM CA the other side's certificate must be signed by (docs/scale-out.md shows how to make all three)",
  },
  'lease-ttl': { type: 'string', description: '(head, agent) etcd lease TTL in seconds (default 10; at least 2)' },
  'payload-port': {
    type: 'string',
    description:
      "(head, agent) TCP port of this host's payload server, which hands payloads to other hosts (default 0: any free port; published in etcd)",
  },
  'max-payload-bytes': {
    type: 'string',
    description: '(head) the largest payload a replica fetches from another host (default 2147483648 = 2 GiB)',
  },
  stages: { type: 'string', description: '(agent) stage ids whose replicas this host runs, e.g. 1,3' },
  replicas: { type: 'string', description: '(agent) replicas of each of those stages on this host (default 1)' },
  'host-id': { type: 'string', description: "(head, agent) this host's id in etcd (default: the hostname)" },
  advertise: {
    type: 'string',
    description:
      "(head) the address replicas dial, when it differs from --control-host; (agent) this host's IP address: its replicas bind and dial from it",
  },
  run: { type: 'string', description: '(agent, status) the run id (default: the newest head in etcd)' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
  version: { type: 'boolean', description: 'show the version' },
} as const satisfies Record<
  string,
  { type: 'string' | 'boolean'; multiple?: boolean; short?: string; description: string }
>;

export type CliValues = {
  [K in keyof typeof COMMON_OPTIONS]?: (typeof COMMON_OPTIONS)[K] extends { type: 'boolean' }
    ? boolean
    : (typeof COMMON_OPTIONS)[K] extends { multiple: true }
      ? string[]
      : string;
};

/** The options of commands that read a pipeline file and plan it (validate, plan). */
const CONFIG_OPTIONS = [
  'platform',
  'engine',
  'model',
  'tokenizer',
  'mode',
  'plugin',
  'stage-overrides',
  'allow-overcommit',
  'no-inline',
  'diffusion-batch-size',
  'log-format',
  'log-level',
  'pipeline',
  'strategy-config',
] as const satisfies readonly OptionName[];
/** ...and those that also start it. */
const LAUNCH_OPTIONS = [
  ...CONFIG_OPTIONS,
  'lock-dir',
  'events',
  'stage-init-timeout',
  'init-timeout',
  'replica-logs',
] as const satisfies readonly OptionName[];

type OptionName = keyof typeof COMMON_OPTIONS;

/** Head mode of serve and up (docs/scale-out.md). */
const HEAD_OPTIONS = [
  'head',
  'etcd',
  'local-stages',
  'min-ready',
  'control-host',
  'control-port',
  'cluster-secret-file',
  'insecure',
  'tls-cert',
  'tls-key',
  'tls-ca',
  'lease-ttl',
  'host-id',
  'advertise',
  'payload-port',
  'max-payload-bytes',
] as const satisfies readonly OptionName[];

interface CommandSpec {
  usage: string;
  summary: string;
  takesFile: boolean;
  options: readonly OptionName[];
}

/** Every command, the options it takes and its one-line help; parsing, `--help` and errors read this table. */
export const COMMANDS = {
  validate: {
    usage: 'validate FILE',
    summary: 'check a pipeline file (exit 2 on any config error)',
    takesFile: true,
    options: [...CONFIG_OPTIONS, 'json'],
  },
  plan: {
    usage: 'plan FILE [--json] [--head]',
    summary: 'print the replica/device/lock plan (with --head: as a head plans it)',
    takesFile: true,
    options: [...CONFIG_OPTIONS, 'json', 'head', 'local-stages'],
  },
  up: {
    usage: 'up FILE',
    summary: 'bring the pipeline up; Ctrl-C (SIGINT/SIGTERM) tears it down',
    takesFile: true,
    options: [...LAUNCH_OPTIONS, ...HEAD_OPTIONS],
  },
  run: {
    usage: 'run FILE --input TEXT',
    summary: 'bring up, send requests through every stage, print outputs, tear down',
    takesFile: true,
    options: [...LAUNCH_OPTIONS, 'input', 'input-file', 'out', 'balance', 'json'],
  },
  serve: {
    usage: 'serve FILE',
    summary: 'bring up and serve an OpenAI-compatible HTTP API (docs/serving.md)',
    takesFile: true,
    options: [
      ...LAUNCH_OPTIONS,
      ...HEAD_OPTIONS,
      'balance',
      'host',
      'port',
      'api-key',
      'metrics-public',
      'allowed-origins',
      'speech-stage',
      'max-inflight',
      'max-inflight-per-replica',
      'request-timeout',
      'drain-timeout',
      'served-model-name',
      'max-body-mb',
    ],
  },
  agent: {
    usage: 'agent FILE --etcd URL --stages N',
    summary: 'run replicas of stages N on this host for the head published in etcd (docs/scale-out.md)',
    takesFile: true,
    options: [
      ...LAUNCH_OPTIONS,
      'etcd',
      'stages',
      'replicas',
      'host-id',
      'advertise',
      'cluster-secret-file',
      'tls-cert',
      'tls-key',
      'tls-ca',
      'lease-ttl',
      'payload-port',
      'run',
    ],
  },
  k8s: {
    usage: 'k8s FILE [--out DIR]',
    summary: 'write Kubernetes manifests (kustomize base: head, agents, etcd, ConfigMap, Secrets; docs/kubernetes.md)',
    takesFile: true,
    options: [
      ...CONFIG_OPTIONS,
      'out',
      'image',
      'etcd',
      'drain-timeout',
      'cluster-secret-file',
      'tls-cert',
      'tls-key',
      'tls-ca',
    ],
  },
  status: {
    usage: 'status --etcd URL',
    summary: 'the head, hosts and replicas of a run in etcd (--run ID; default the newest)',
    takesFile: false,
    options: ['etcd', 'run', 'json', 'log-format', 'log-level'],
  },
  schema: {
    usage: 'schema',
    summary: 'JSON Schema (draft-07) of pipeline files, for editors',
    takesFile: false,
    options: ['plugin'],
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

export interface ParsedCommandLine {
  /** undefined: no command given; `help`: `omnistage help [COMMAND]`. */
  command: CommandName | 'help' | undefined;
  /** The pipeline file of commands that take one. */
  file: string | undefined;
  /** For `help COMMAND` and `COMMAND --help`: the command help was asked about. */
  helpFor: CommandName | undefined;
  values: CliValues;
}

function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const [best] = suggestions(input, candidates, 1);
  return best === undefined ? undefined : `did you mean \`${best}\`?`;
}

const isCommand = (name: string | undefined): name is CommandName =>
  name !== undefined && Object.hasOwn(COMMANDS, name);

function usageError(message: string, hint: string): OmniError {
  return new OmniError('OMNI_USAGE', message, { hint });
}

function unknownCommand(name: string): OmniError {
  const guess = didYouMean(name, Object.keys(COMMANDS));
  return usageError(
    `unknown command "${name}"${guess ? `; ${guess}` : ''}`,
    `commands: ${Object.keys(COMMANDS).join(', ')} (omnistage --help)`,
  );
}

/**
 * Parses argv strictly: an unknown option (with the option meant), a missing value, an option
 * the command does not take, or an extra argument is a usage error (exit 2), never ignored.
 * `node:util` parseArgs reads the tokens; the checks and messages are ours, so that they name
 * the command and the fix rather than parseArgs' generic quoting advice.
 */
export function parseCommandLine(argv: string[]): ParsedCommandLine {
  const options = Object.fromEntries(
    Object.entries(COMMON_OPTIONS).map(([k, v]) => [
      k,
      {
        type: v.type,
        ...('multiple' in v ? { multiple: v.multiple } : {}),
        ...('short' in v ? { short: v.short } : {}),
      },
    ]),
  ) as ParseArgsConfig['options'];
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const [first, ...rest] = positionals;
  const command = first === 'help' ? 'help' : first;
  if (command !== undefined && command !== 'help' && !isCommand(command)) throw unknownCommand(command);
  const spec = isCommand(command) ? COMMANDS[command] : undefined;
  const helpHint = spec ? `omnistage ${command} --help lists its options` : 'omnistage --help lists the commands';
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const known = COMMON_OPTIONS[t.name as OptionName] as (typeof COMMON_OPTIONS)[OptionName] | undefined;
    if (!known) {
      const pool = spec ? [...spec.options, 'help'] : Object.keys(COMMON_OPTIONS);
      const guess = didYouMean(t.name, pool);
      throw usageError(`unknown option ${t.rawName}${guess ? `; ${guess.replace('`', '`--')}` : ''}`, helpHint);
    }
    if (known.type === 'string' && t.value === undefined) throw usageError(`${t.rawName} needs a value`, helpHint);
    if (known.type === 'boolean' && t.inlineValue)
      throw usageError(`${t.rawName} takes no value (got "${t.value}")`, helpHint);
    if (spec && t.name !== 'help' && t.name !== 'version' && !(spec.options as readonly string[]).includes(t.name)) {
      const takers = Object.entries(COMMANDS)
        .filter(([, c]) => (c.options as readonly string[]).includes(t.name))
        .map(([n]) => `omnistage ${n}`);
      throw usageError(
        `\`omnistage ${command}\` does not take --${t.name}`,
        `${takers.length ? `it is an option of ${takers.join(', ')}; ` : ''}${helpHint}`,
      );
    }
  }
  if (command === 'help') {
    const about = rest[0];
    if (about !== undefined && !isCommand(about)) throw unknownCommand(about);
    return { command, file: undefined, helpFor: about, values: values as CliValues };
  }
  const helpFor = values.help && isCommand(command) ? command : undefined;
  let file: string | undefined;
  if (spec && !helpFor) {
    if (!spec.takesFile && rest.length > 0)
      throw usageError(`\`omnistage ${command}\` takes no file or argument, got "${rest[0]}"`, helpHint);
    if (spec.takesFile) {
      file = rest[0];
      if (file === undefined)
        throw usageError(`\`omnistage ${command}\` needs a pipeline file`, `omnistage ${spec.usage}`);
      if (rest.length > 1)
        throw usageError(`unexpected argument "${rest[1]}"`, `omnistage ${command} takes one pipeline file`);
    }
  }
  return { command, file, helpFor, values: values as CliValues };
}

/** A positive number of seconds from an option, or undefined. */
export function secondsOption(
  values: CliValues,
  name: 'stage-init-timeout' | 'init-timeout' | 'request-timeout' | 'drain-timeout',
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new OmniError('OMNI_USAGE', `--${name} must be a positive number of seconds, got "${raw}"`, {
      hint: `e.g. --${name} ${name === 'init-timeout' ? 900 : 600}`,
    });
  }
  return n;
}

function optionLines(names: readonly OptionName[]): string {
  return names
    .map(
      (k) =>
        `${`  --${k}${COMMON_OPTIONS[k].type === 'string' ? ' VALUE' : ''}`.padEnd(32)} ${COMMON_OPTIONS[k].description}`,
    )
    .join('\n');
}

/** `omnistage --help`: the commands; `omnistage COMMAND --help`: that command's options. */
export function helpText(version: string, command?: CommandName): string {
  if (command) {
    const spec: CommandSpec = COMMANDS[command];
    return `Usage: omnistage ${spec.usage} [options]

${spec.summary}

Options:
${optionLines([...spec.options, 'help'])}

Exit codes: 0 ok, 1 runtime failure, 2 config or usage error; stopped by a signal (after the teardown): 130 Ctrl-C/SIGINT, 143 SIGTERM${command === 'serve' ? '; serve: 0 when its drain completed' : ''}.`;
  }
  const specs = Object.values(COMMANDS as Record<string, CommandSpec>);
  // The summaries start in one column, just right of the longest usage.
  const width = Math.max(...specs.map((c) => `omnistage ${c.usage}`.length), 'omnistage help COMMAND'.length) + 2;
  const commands = [
    ...specs.map((c) => `  ${`omnistage ${c.usage}`.padEnd(width)}${c.summary}`),
    `  ${'omnistage help COMMAND'.padEnd(width)}the options of COMMAND (same as omnistage COMMAND --help)`,
  ].join('\n');
  return `omnistage ${version} — bring multi-stage model pipelines up and down

Usage:
${commands}

Options:
${optionLines(['help', 'version'])}

Exit codes: 0 ok, 1 runtime failure, 2 config or usage error; stopped by a signal (after the teardown): 130 Ctrl-C/SIGINT, 143 SIGTERM (serve: 0 when its drain completed).`;
}
