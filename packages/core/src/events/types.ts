import type { PayloadEvent } from '../connectors/payload-tracker.js';

/** Phases every replica goes through, in order (brief §3). */
export type ReplicaPhase = 'metadata' | 'args' | 'worker' | 'lock' | 'spawn' | 'attach';

/** The replica phases in the order they run. */
export const REPLICA_PHASES: readonly ReplicaPhase[] = ['metadata', 'args', 'worker', 'lock', 'spawn', 'attach'];

interface ReplicaRef {
  stage_id: number;
  replica_id: number;
}

/** Where one planned replica runs, as `pipeline:planned` tells it (a subset of its `ReplicaPlan`). */
export interface PlacedReplica extends ReplicaRef {
  /** The logical device string of the config, or null (inherits every visible device). */
  devices: string | null;
  /** The physical ids `devices` maps to through the platform's visible devices. */
  physical_devices: string[];
  /** The launch group: its members start one after another, groups concurrently. */
  group: number;
}

/**
 * Every event the orchestrator emits. Events are JSON-serialisable notifications for observers
 * (CLI status, `--events FILE`, third-party plugins); they never change what happens.
 */
export type OmniEventPayload =
  /** Planning is done and bring-up may start: every replica's devices and launch group, in plan order. */
  | { type: 'pipeline:planned'; replicas: number; groups: number; placement: PlacedReplica[] }
  /**
   * At bring-up start: this replica waits for its launch group, i.e. until `behind` (the member
   * before it) is ready or holds its devices shared. Its `lock` phase starting ends the wait.
   */
  | ({ type: 'replica:queued'; group: number; behind: ReplicaRef } & ReplicaRef)
  | ({ type: 'replica:phase'; phase: ReplicaPhase; status: 'start' | 'end'; duration_ms?: number } & ReplicaRef)
  | ({ type: 'lock:waiting'; device: string; holder: Record<string, unknown> | null } & ReplicaRef)
  | ({ type: 'lock:acquired'; device: string; pid: number } & ReplicaRef)
  | ({ type: 'lock:released'; device: string; pid: number } & ReplicaRef)
  /**
   * A phase-aware replica's exclusive init window (docs/protocol.md "Init phases"): `waiting` when
   * it asked, `start` when granted, `end` when it gave the devices back to shared use.
   */
  | ({ type: 'replica:window'; window: number; devices: string[]; state: 'waiting' | 'start' | 'end' } & ReplicaRef)
  | ({ type: 'replica:spawned'; pid: number } & ReplicaRef)
  | ({ type: 'replica:ready'; pid: number; duration_ms: number } & ReplicaRef)
  | ({ type: 'replica:failed'; phase: ReplicaPhase | 'running'; code: string; message: string } & ReplicaRef)
  | ({ type: 'replica:exit'; pid: number; code: number | null; signal: string | null; expected: boolean } & ReplicaRef)
  | ({ type: 'replica:restart'; attempt: number; reason: string } & ReplicaRef)
  /**
   * A serving replica stopped answering: a stopped process or missing heartbeats (out of rotation,
   * killed), or failed readiness re-checks of an HTTP engine (out of rotation until it answers again).
   */
  | ({ type: 'replica:unresponsive'; pid: number; reason: string } & ReplicaRef)
  /** A replica that failed readiness re-checks (an HTTP engine: out of rotation, not killed) answers again: back in rotation. */
  | ({ type: 'replica:responsive'; pid: number; out_ms: number } & ReplicaRef)
  /** A replica started by an agent on another host became ready and joined its stage's pool (head mode). */
  | ({
      type: 'replica:attached';
      host_id: string;
      /** The address its control connection came from. */ peer_address: string;
      pid: number;
      incarnation: string;
    } & ReplicaRef)
  /** A remote replica left its stage's pool: its lease expired, its connection dropped, its agent left, or a newer incarnation fenced it. */
  | ({ type: 'replica:detached'; host_id: string; reason: string } & ReplicaRef)
  /** An agent's host registered with (or left) the run's discovery (head mode). */
  | { type: 'host:joined'; host_id: string }
  | { type: 'host:left'; host_id: string }
  /**
   * The router's entry gate was sized (when the router is created) or resized (a replica joined or
   * left a stage's pool): the pipeline admits at most `capacity` requests at once, the sum over
   * `stages` of `max(1, replicas) × per_replica`.
   */
  | {
      type: 'pipeline:admission';
      capacity: number;
      stages: { stage_id: number; replicas: number; per_replica: number }[];
    }
  /** A stage's part of a request went to a replica; `streams_from`: its input streams from that stage (a streaming edge). */
  | ({ type: 'request:dispatched'; request_id: string; streams_from?: number } & ReplicaRef)
  /** A stage emitted the first output chunk of a request, `ms` after it was dispatched. */
  | ({ type: 'request:first_chunk'; request_id: string; ms: number } & ReplicaRef)
  /**
   * A stage's part of a request ended on one replica: `done`, `failed`, or `aborted` (the request was
   * cancelled while the replica worked on it, and the replica was sent `abort`).
   */
  | ({
      type: 'request:stage_end';
      request_id: string;
      outcome: 'done' | 'aborted' | 'failed';
      duration_ms: number;
    } & ReplicaRef)
  | PayloadEvent
  | { type: 'pipeline:ready'; duration_ms: number }
  | { type: 'pipeline:stopping'; reason: string }
  | { type: 'pipeline:stopped' }
  | { type: 'run:reaped'; stale_run_id: string; pid: number; payload_files: number }
  | { type: 'pipeline:failed'; code: string; message: string; stage_id?: number; replica_id?: number; phase?: string };

/** An event as delivered: the payload plus `ts` (ms since epoch) and the run it belongs to. */
export type OmniEvent = OmniEventPayload & { ts: number; run_id: string };

/** The `type` of every event. */
export type OmniEventType = OmniEventPayload['type'];
/** The event of one type, as delivered. */
export type OmniEventOf<T extends OmniEventType> = Extract<OmniEvent, { type: T }>;
