import { delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANY_STAGE_TYPE, definePlugin, type OmnistagePlugin, type WorkerSpec } from '@omnistage/core';
import { checkPythonEntry, pythonEntryOf } from './python-entry.js';

/** Name of the plugin and of its engine. */
export const PYTHON_ENGINE = 'python';

/** The Python worker SDK's sources (packages/worker-python/src), put on each replica's PYTHONPATH. */
export const PYTHON_SDK_DIR = fileURLToPath(new URL('../../worker-python/src', import.meta.url));

/**
 * The `python` engine, for every stage type (built-in or a plugin's): a replica runs
 * `<python> -m omnistage_worker <entry>` with the SDK on its PYTHONPATH and attaches over the
 * control protocol like any other worker. `engine_args.entry` (`./my_engine.py[:Class]`) is
 * relative to the pipeline file; the interpreter is `engine_args.python`, `$OMNISTAGE_PYTHON` or
 * `python3`. Both are checked at plan time.
 */
export function pythonPlugin(): OmnistagePlugin {
  return definePlugin({
    name: 'python-engine',
    apply(omni) {
      omni.defineEngine({
        stageType: ANY_STAGE_TYPE,
        name: PYTHON_ENGINE,
        // Every key reaches the user's Python engine, whose constructor omnistage cannot see: a
        // closed list would warn about every key the engine's author chose (`entry` and `python` are ours).
        engineArgs: 'any',
        // The user's engine reads `request.inputs` as it streams only if it says so (engine_args.streams_input).
        streamsInput: (stage) => stage.engine_args['streams_input'] === true,
        validateStage(stage, ctx) {
          const env = ctx.options.env ?? process.env;
          checkPythonEntry(stage, pythonEntryOf(stage, ctx.config.file, env), env);
        },
        resolveWorker(ctx): WorkerSpec {
          const env = ctx.plan.options.env ?? process.env;
          const entry = pythonEntryOf(ctx.stage, ctx.plan.config.file, env);
          const inherited = ctx.env['PYTHONPATH'] ?? env['PYTHONPATH'];
          return {
            command: entry.python,
            args: [
              '-m',
              'omnistage_worker',
              entry.className === null ? entry.file : `${entry.file}:${entry.className}`,
            ],
            env: {
              PYTHONPATH: inherited ? `${PYTHON_SDK_DIR}${delimiter}${inherited}` : PYTHON_SDK_DIR,
              // print() lines reach omnistage's log as they happen, not when a buffer fills.
              PYTHONUNBUFFERED: '1',
            },
            attach: 'control',
          };
        },
      });
    },
  });
}
