import type { ReplicaPhase } from '../events/types.js';

/**
 * Where one replica is in its pipeline: the phase, the tap running it, and the step that tap said
 * it waits for (`hello`, `ready`). Deadlines, cancels and exits name what this says.
 */
export interface ReplicaProgress {
  readonly replica: { readonly stage_id: number; readonly replica_id: number };
  phase: ReplicaPhase;
  /** Name of the tap the phase is running (a plugin, or a built-in `omnistage:*`), null between taps. */
  tap: string | null;
  /** What the running tap waits for, when it said (`runtime.progress`); reset with each phase. */
  step: string | null;
  /** What the step waits for, in words, when the tap said. */
  detail: string | null;
}

/** The name errors and events give to where a replica was: its step when known, else its phase. */
export function whereIs(p: ReplicaProgress): string {
  return p.step ?? p.phase;
}

/** What a replica was doing, for timeout and cancel messages. */
export function describeProgress(p: ReplicaProgress): string {
  switch (p.phase) {
    case 'lock':
      return 'waiting for its device locks';
    case 'spawn':
      return 'spawning';
    case 'attach':
      return p.detail ? `attaching (${p.detail})` : p.step ? `attaching, no ${p.step} message yet` : 'attaching';
    default:
      return `in phase ${p.phase}`;
  }
}
