/**
 * Test knobs of the reference engines (engine args), so tests and demos can reproduce slow,
 * failing and hanging engines without a GPU. Read from `OMNISTAGE_ENGINE_ARGS` before the worker
 * says hello, because `fail_phase: hello` must act before any message is exchanged.
 */
export interface ReferenceKnobs {
  /** Time spent "loading" after welcome, before ready. */
  init_delay_ms: number;
  /** Exit with `fail_exit_code` instead of sending this message. */
  fail_phase: 'hello' | 'ready' | null;
  fail_exit_code: number;
  /** Never send this message (the orchestrator's deadline must catch it). */
  hang_phase: 'hello' | 'ready' | null;
  /** Time per generated token (lets tests catch a request mid-flight). */
  token_delay_ms: number;
  /** Time spent "loading weights" after welcome (devices held shared when `init_phases`). */
  load_ms: number;
  /** Time spent "profiling memory" after loading (in an exclusive window when `init_phases`). */
  profile_ms: number;
  /** Declare init phases in hello and profile inside `conn.exclusive()` (docs/protocol.md "Init phases"). */
  init_phases: boolean;
  /** Inside the exclusive window: exit with `fail_exit_code`, or never leave it (tests). */
  window_fault: 'exit' | 'hang' | null;
  /** Wedge the whole process (a synchronous loop that never ends) on its first request: alive, silent. */
  wedge_on_request: boolean;
}

const PHASES = ['hello', 'ready'] as const;

function phase(v: unknown): 'hello' | 'ready' | null {
  return PHASES.includes(v as 'hello') ? (v as 'hello' | 'ready') : null;
}

function nonNegative(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fallback;
}

export function readKnobs(engineArgs: Record<string, unknown>): ReferenceKnobs {
  return {
    init_delay_ms: nonNegative(engineArgs['init_delay_ms'], 0),
    fail_phase: phase(engineArgs['fail_phase']),
    fail_exit_code: typeof engineArgs['fail_exit_code'] === 'number' ? Math.trunc(engineArgs['fail_exit_code']) : 1,
    hang_phase: phase(engineArgs['hang_phase']),
    token_delay_ms: nonNegative(engineArgs['token_delay_ms'], 0),
    load_ms: nonNegative(engineArgs['load_ms'], 0),
    profile_ms: nonNegative(engineArgs['profile_ms'], 0),
    init_phases: engineArgs['init_phases'] === true,
    window_fault:
      engineArgs['window_fault'] === 'exit' || engineArgs['window_fault'] === 'hang'
        ? engineArgs['window_fault']
        : null,
    wedge_on_request: engineArgs['wedge_on_request'] === true,
  };
}

/** Engine args travel to reference workers in this variable (JSON) as well as in `welcome`. */
export const ENGINE_ARGS_ENV = 'OMNISTAGE_ENGINE_ARGS';

export function engineArgsFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const raw = env[ENGINE_ARGS_ENV];
  if (!raw) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}
