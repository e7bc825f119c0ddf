import { parseArgs, type ParseArgsConfig } from 'node:util';
import { OmniError } from '@omnistage/core';

/** Options every command takes (issue: CLI). Kept in one table so `--help` and parsing agree. */
export const COMMON_OPTIONS = {
  platform: { type: 'string', description: 'cuda | rocm | npu | xpu | cpu (default: cuda when nvidia-smi is found, else cpu)' },
  engine: { type: 'string', description: "override every stage's engine (e.g. reference)" },
  model: { type: 'string', description: 'model id or local path, as `vllm serve <model>` takes it' },
  tokenizer: { type: 'string', description: 'tokenizer forwarded to stages that do not define their own' },
  'lock-dir': { type: 'string', description: 'device lock directory (env OMNISTAGE_LOCK_DIR; default <tmp>/omnistage-locks)' },
  events: { type: 'string', description: 'append every event to FILE as JSON lines' },
  'log-format': { type: 'string', description: 'pretty | json (default: pretty on a TTY, json otherwise)' },
  'log-level': { type: 'string', description: 'trace | debug | info | warn | error (default: info)' },
  'stage-init-timeout': { type: 'string', description: 'seconds one replica may take to lock, spawn and attach (default 300)' },
  'init-timeout': { type: 'string', description: 'seconds the whole pipeline may take to come up (default 600)' },
  'stage-overrides': { type: 'string', description: 'JSON or YAML: {"<stage_id>": {key: value}}' },
  'allow-overcommit': { type: 'boolean', description: 'over-committed devices warn instead of failing the plan' },
  mode: { type: 'string', description: 'select a `modes` entry of the pipeline file' },
  pipeline: { type: 'string', description: 'registered pipeline (topology) for a deploy file; wins over its `pipeline:` key and the model' },
  'strategy-config': { type: 'string', description: 'strategy FILE: parallel axes (tp/dp/pp/ep/stage_replica) per model_stage' },
  plugin: { type: 'string', multiple: true, description: 'load a plugin (npm package or path); repeatable' },
  'diffusion-batch-size': { type: 'string', description: 'requests batched together by diffusion engines (default 1)' },
  'no-inline': { type: 'boolean', description: 'never run an engine inside the orchestrator process' },
  json: { type: 'boolean', description: 'machine-readable output' },
  input: { type: 'string', multiple: true, description: '(run) a request input; repeatable' },
  'input-file': { type: 'string', description: '(run) one request per line of FILE' },
  out: { type: 'string', description: '(run) directory for image/audio/tensor outputs (default ./omnistage-out)' },
  balance: { type: 'string', description: '(run, serve) round-robin | least-inflight: how requests spread over a stage\'s replicas' },
  host: { type: 'string', description: '(serve) address to listen on (default 127.0.0.1)' },
  port: { type: 'string', description: '(serve) port to listen on (default 8000; 0 picks a free one)' },
  'api-key': { type: 'string', description: '(serve) require "Authorization: Bearer KEY" (env OMNISTAGE_API_KEY)' },
  'metrics-public': { type: 'boolean', description: '(serve) /metrics needs no API key' },
  'max-inflight': { type: 'string', description: '(serve) generation requests in flight before 429 (default 1024)' },
  'request-timeout': { type: 'string', description: '(serve) seconds before a request is aborted with 504 (default: none)' },
  'drain-timeout': { type: 'string', description: '(serve) seconds in-flight requests may finish after SIGTERM/SIGINT (default 30)' },
  'served-model-name': { type: 'string', description: '(serve) model name clients send (default: --model, the file\'s model:, or the file name)' },
  'max-body-mb': { type: 'string', description: '(serve) largest request body in MiB (default 64)' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
  version: { type: 'boolean', description: 'show the version' },
} as const satisfies Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string; description: string }>;

export type CliValues = {
  [K in keyof typeof COMMON_OPTIONS]?: (typeof COMMON_OPTIONS)[K] extends { type: 'boolean' }
    ? boolean
    : (typeof COMMON_OPTIONS)[K] extends { multiple: true }
      ? string[]
      : string;
};

export interface ParsedCommandLine {
  command: string | undefined;
  positionals: string[];
  values: CliValues;
}

/** Parses argv strictly: an unknown option or a missing value is a usage error (exit 2), never ignored. */
export function parseCommandLine(argv: string[]): ParsedCommandLine {
  const options = Object.fromEntries(
    Object.entries(COMMON_OPTIONS).map(([k, v]) => [k, { type: v.type, ...('multiple' in v ? { multiple: v.multiple } : {}), ...('short' in v ? { short: v.short } : {}) }]),
  ) as ParseArgsConfig['options'];
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { command: positionals[0], positionals: positionals.slice(1), values: values as CliValues };
  } catch (err) {
    throw new OmniError('OMNI_USAGE', (err as Error).message, { hint: 'run `omnistage --help` for the list of commands and options' });
  }
}

/** A positive number of seconds from an option, or undefined. */
export function secondsOption(values: CliValues, name: 'stage-init-timeout' | 'init-timeout' | 'request-timeout' | 'drain-timeout'): number | undefined {
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

export function helpText(version: string): string {
  const opts = Object.entries(COMMON_OPTIONS)
    .map(([k, v]) => `${`  --${k}${v.type === 'string' ? ' VALUE' : ''}`.padEnd(29)} ${v.description}`)
    .join('\n');
  return `omnistage ${version} — bring multi-stage model pipelines up and down

Usage:
  omnistage validate FILE            check a pipeline file (exit 2 on any config error)
  omnistage plan FILE [--json]       print the replica/device/lock plan
  omnistage up FILE                  bring the pipeline up; Ctrl-C (SIGINT/SIGTERM) tears it down
  omnistage run FILE --input TEXT    bring up, send requests through every stage, print outputs, tear down
  omnistage serve FILE               bring up and serve an OpenAI-compatible HTTP API (docs/serving.md)
  omnistage schema                   JSON Schema (draft-07) of pipeline files, for editors

Options:
${opts}

Exit codes: 0 ok, 1 runtime failure, 2 config or usage error.`;
}
