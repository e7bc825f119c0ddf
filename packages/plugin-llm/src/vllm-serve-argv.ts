import { OmniError, diagnostic, suggestions } from '@omnistage/core';
import type { Diagnostic, EngineArgs, SourceLocation } from '@omnistage/core';
import { LAUNCHER_OWNED_KEYS, OMNI_ONLY_ENGINE_KEYS, VLLM_KNOWN_FLAGS, toKebabFlag } from './vllm-flags.js';

/** Inputs of {@link vllmServeArgv} / {@link deriveVllmServeArgv}. */
export interface VllmServeArgvOptions {
  /** Model path or hub id: the positional argument of `vllm serve`. */
  model: string;
  /** The port omnistage assigned to this replica. */
  port: number;
  /** Bind address; `127.0.0.1` unless given (replicas are reached by the local orchestrator). */
  host?: string;
  /** Executable in `argv[0]`; `vllm` unless given. */
  executable?: string;
  /** Location of an engine-args key, for warnings (e.g. `k => stage.locations.at('engine_args.' + k)`). */
  locate?: (key: string) => SourceLocation | undefined;
}

/** Result of {@link deriveVllmServeArgv}. */
export interface VllmServeArgv {
  /** Full argv: `[executable, 'serve', model, '--host', host, '--port', port, ...flags]`. */
  argv: string[];
  /** Engine-args keys passed as flags that are not in {@link VLLM_KNOWN_FLAGS}. */
  unknownKeys: string[];
  /** One `OMNI_WARN_VLLM_FLAG_UNKNOWN` per unknown key. */
  warnings: Diagnostic[];
}

function flagWords(flag: string, value: unknown, nargs: boolean): string[] {
  if (Array.isArray(value)) {
    // nargs='+' flags take their elements as separate words; vLLM would read a JSON array as one
    // (wrong) string there. An empty list cannot be expressed and means "nothing".
    if (nargs)
      return value.length === 0 ? [] : [flag, ...value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))];
    return [flag, JSON.stringify(value)];
  }
  if (typeof value === 'object') return [flag, JSON.stringify(value)];
  return [flag, String(value)];
}

/** "Did you mean …? " for the known flag or vLLM-Omni key closest to `key`, or ''. */
function nearestKey(key: string): string {
  const [near] = suggestions(key, [...Object.keys(VLLM_KNOWN_FLAGS), ...OMNI_ONLY_ENGINE_KEYS], 1);
  if (near === undefined) return '';
  return near in VLLM_KNOWN_FLAGS
    ? `Did you mean \`${near}\` (--${toKebabFlag(near)})? `
    : `Did you mean \`${near}\` (a vLLM-Omni key, not a flag)? `;
}

/**
 * Derives the `vllm serve` command line of one replica from its normalised engine args, and says
 * which keys vLLM might not know.
 *
 * Rules, in engine-args key order after `<model> --host H --port P`:
 * - omnistage / vLLM-Omni keys ({@link OMNI_ONLY_ENGINE_KEYS}) and launcher-owned keys (`model`,
 *   `host`, `port`) are dropped; `null`/`undefined` values are dropped (vLLM default applies);
 * - `snake_case` → `--kebab-case`;
 * - `true` → the bare flag; `false` → `--no-<flag>` when vLLM declares the flag
 *   `BooleanOptionalAction` ({@link VllmFlagSpec.negatable}), else nothing (false is the default of
 *   a `store_true` flag, and unknown flags get the same treatment);
 * - lists → separate words for `nargs='+'` flags, else a JSON string; objects → a JSON string;
 *   numbers and strings → their text.
 * Keys not in {@link VLLM_KNOWN_FLAGS} are still emitted and reported in `unknownKeys`/`warnings`.
 */
export function deriveVllmServeArgv(engineArgs: EngineArgs, options: VllmServeArgvOptions): VllmServeArgv {
  const { model, port } = options;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new OmniError('OMNI_INTERNAL', `vllm serve needs a TCP port in 1..65535, got ${String(port)}.`, {
      hint: 'This is a bug in the caller: assign the replica a free port before building its command line.',
    });
  }
  const argv = [
    options.executable ?? 'vllm',
    'serve',
    model,
    '--host',
    options.host ?? '127.0.0.1',
    '--port',
    String(port),
  ];
  const unknownKeys: string[] = [];
  const warnings: Diagnostic[] = [];

  for (const [key, value] of Object.entries(engineArgs)) {
    if (OMNI_ONLY_ENGINE_KEYS.has(key) || LAUNCHER_OWNED_KEYS.has(key)) continue;
    if (value === null || value === undefined) continue;
    const spec = VLLM_KNOWN_FLAGS[key];
    const flag = `--${toKebabFlag(key)}`;
    if (spec === undefined) {
      unknownKeys.push(key);
      warnings.push(
        diagnostic(
          'OMNI_WARN_VLLM_FLAG_UNKNOWN',
          `engine_args.${key} is not a vllm serve flag omnistage knows; passing it as ${flag}.`,
          options.locate?.(key),
          `${nearestKey(key)}Check it against 'vllm serve --help' (vLLM exits on flags it does not know), ` +
            'or remove it if it was meant for another engine.',
        ),
      );
    }
    if (typeof value === 'boolean') {
      if (value) argv.push(flag);
      else if (spec?.negatable === true) argv.push(`--no-${toKebabFlag(key)}`);
      continue;
    }
    argv.push(...flagWords(flag, value, spec?.nargs === true));
  }
  return { argv, unknownKeys, warnings };
}

/**
 * The `vllm serve` argv of one replica: `['vllm', 'serve', model, '--host', '127.0.0.1',
 * '--port', N, ...flags]` (see {@link deriveVllmServeArgv} for the flag rules and for the list of
 * keys vLLM might not know). `argv[0]` is the executable; spawn it with `argv.slice(1)`.
 */
export function vllmServeArgv(engineArgs: EngineArgs, options: VllmServeArgvOptions): string[] {
  return deriveVllmServeArgv(engineArgs, options).argv;
}
