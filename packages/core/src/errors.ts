/**
 * The one error catalogue of omnistage. Every failure a user can see carries a stable `code`
 * from {@link ERROR_CATALOGUE}, an exit code for the CLI (2 = config or usage, 1 = runtime), an
 * optional YAML location, structured context and a hint that says how to fix it.
 */

/** A position in a YAML (or JSON) source: 1-based line and column. */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/** Stable error codes, with the CLI exit code each one maps to and a one-line summary. */
export const ERROR_CATALOGUE = {
  OMNI_USAGE: { exitCode: 2, summary: 'the command line is not valid' },
  OMNI_CONFIG_NOT_FOUND: { exitCode: 2, summary: 'a configuration file could not be read' },
  OMNI_CONFIG_PARSE: { exitCode: 2, summary: 'a configuration file is not valid YAML' },
  OMNI_CONFIG_INVALID: { exitCode: 2, summary: 'a configuration value is not valid' },
  OMNI_CONFIG_UNKNOWN_KEY: { exitCode: 2, summary: 'a configuration key is not known' },
  OMNI_CONFIG_BASE_CYCLE: { exitCode: 2, summary: 'base_config files include each other' },
  OMNI_CONFIG_OVERRIDE_INVALID: { exitCode: 2, summary: '--stage-overrides is not valid' },
  OMNI_CONFIG_CONNECTOR: { exitCode: 2, summary: 'a connector reference or edge is not valid' },
  OMNI_STAGE_TYPE_UNKNOWN: { exitCode: 2, summary: 'no plugin handles this stage type' },
  OMNI_ENGINE_UNKNOWN: { exitCode: 2, summary: 'no plugin provides this engine' },
  OMNI_PLAN_DEVICES: { exitCode: 2, summary: 'devices cannot be assigned to replicas' },
  OMNI_PLAN_OVERCOMMIT: { exitCode: 2, summary: 'a device is over-committed' },
  OMNI_PLUGIN_INVALID: { exitCode: 2, summary: 'a plugin could not be loaded or is not valid' },
  OMNI_PLUGIN_FAILED: { exitCode: 1, summary: 'a plugin hook threw' },
  OMNI_LOCK_TIMEOUT: { exitCode: 1, summary: 'a device lock was not acquired in time' },
  OMNI_LOCK_COMPROMISED: { exitCode: 1, summary: 'a held device lock was lost' },
  OMNI_SPAWN_FAILED: { exitCode: 1, summary: 'a replica process could not be started' },
  OMNI_PORT_IN_USE: { exitCode: 1, summary: 'a port a replica must bind is taken by another program' },
  OMNI_WORKER_EXITED: { exitCode: 1, summary: 'a replica process exited' },
  OMNI_ATTACH_TIMEOUT: { exitCode: 1, summary: 'a replica did not attach in time' },
  OMNI_INIT_TIMEOUT: { exitCode: 1, summary: 'the pipeline did not come up in time' },
  OMNI_PROTOCOL: { exitCode: 1, summary: 'a replica broke the control protocol' },
  OMNI_CANCELLED: { exitCode: 1, summary: 'the operation was cancelled' },
  OMNI_REQUEST_FAILED: { exitCode: 1, summary: 'a request could not be completed' },
  OMNI_INTERNAL: { exitCode: 1, summary: 'an internal error (a bug in omnistage)' },
  // `omnistage serve`: the HTTP answer's `error.code`; the status is in docs/serving.md.
  OMNI_HTTP_INVALID_REQUEST: { exitCode: 1, summary: 'an HTTP request is not valid (body, field, route or model)' },
  OMNI_HTTP_UNAUTHORIZED: { exitCode: 1, summary: 'an HTTP request lacks the right API key' },
  OMNI_HTTP_OVERLOADED: { exitCode: 1, summary: 'the server has --max-inflight requests in flight' },
  OMNI_HTTP_UNAVAILABLE: { exitCode: 1, summary: 'the server is coming up, draining or has a stage without a live replica' },
  OMNI_REQUEST_TIMEOUT: { exitCode: 1, summary: 'a request ran past --request-timeout' },
  OMNI_SERVE_LISTEN: { exitCode: 1, summary: 'the HTTP server could not listen on its host and port' },
  OMNI_DRAIN_TIMEOUT: { exitCode: 1, summary: 'requests in flight did not finish within --drain-timeout' },
} as const satisfies Record<string, { exitCode: 1 | 2; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Where in the pipeline an error happened. All fields are optional; set what is known. */
export interface ErrorContext {
  stage_id?: number;
  stage_idx?: number;
  replica_id?: number;
  phase?: string;
  plugin?: string;
  hook?: string;
  device?: string;
  pid?: number;
  exit_code?: number | null;
  signal?: string | null;
  /** Last log lines of the replica, newest last. */
  last_lines?: string[];
  [key: string]: unknown;
}

export interface OmniErrorOptions {
  hint?: string;
  location?: SourceLocation;
  /** Further locations that take part (e.g. the other side of a connector edge). */
  related?: SourceLocation[];
  context?: ErrorContext;
  cause?: unknown;
}

export class OmniError extends Error {
  override readonly name = 'OmniError';
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;
  readonly hint: string | undefined;
  readonly location: SourceLocation | undefined;
  readonly related: SourceLocation[];
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, options: OmniErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = ERROR_CATALOGUE[code].exitCode;
    this.hint = options.hint;
    this.location = options.location;
    this.related = options.related ?? [];
    this.context = options.context ?? {};
  }

  /** JSON shape used by `--events` (`pipeline:failed`) and `--json` outputs. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      hint: this.hint,
      ...(this.location ? { file: this.location.file, line: this.location.line, col: this.location.col } : {}),
      context: this.context,
    };
  }
}

export function isOmniError(value: unknown): value is OmniError {
  return value instanceof Error && (value as { name?: string }).name === 'OmniError' && 'code' in value;
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

/**
 * Human-readable rendering for the CLI: `file:line:col: error CODE: message`, then the hint and any
 * related locations on indented lines.
 */
export function formatError(err: OmniError): string {
  const where = err.location ? `${formatLocation(err.location)}: ` : '';
  const lines = [`${where}error ${err.code}: ${err.message}`];
  for (const rel of err.related) lines.push(`  see also ${formatLocation(rel)}`);
  if (err.context.last_lines && err.context.last_lines.length > 0) {
    lines.push('  last output of the replica:');
    for (const l of err.context.last_lines) lines.push(`    | ${l}`);
  }
  if (err.hint) lines.push(`  hint: ${err.hint}`);
  return lines.join('\n');
}

/** Wraps anything thrown into an OmniError, keeping OmniErrors as they are. */
export function toOmniError(value: unknown, fallback: ErrorCode = 'OMNI_INTERNAL', context?: ErrorContext): OmniError {
  if (isOmniError(value)) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new OmniError(fallback, message, { cause: value, context });
}
