import type { OmniEvent, OmnistagePlugin } from '@omnistage/core';

/** One tick of the time axis: where (ms since the bring-up start) and its label (`200 ms`, `1.5 s`). */
export interface AxisTick {
  ms: number;
  label: string;
}

/** The time axis: a step of 1, 2 or 5 × 10^k ms, ticks from 0 to `end` (the first multiple of the step at or past the span). */
export interface Axis {
  step: number;
  end: number;
  ticks: AxisTick[];
}

/** A bar of a row, in ms since the bring-up start. */
export interface TimelineBar {
  kind: 'lock' | 'spawn' | 'attach' | 'window';
  start: number;
  end: number;
}

/** Why a replica started late: queued behind a member of its launch group, or waiting for a device lock. */
export type TimelineWait =
  | { kind: 'group'; group: number; behind: { stage_id: number; replica_id: number }; start: number; end: number }
  | {
      kind: 'locks';
      device: string;
      /** Who held it while this replica waited (`lock:waiting`'s holders, in order). */ holders: Record<
        string,
        unknown
      >[];
      start: number;
      end: number;
    };

/** One replica's row. */
export interface TimelineRow {
  stage_id: number;
  replica_id: number;
  /** The logical device string (null: every visible device). */
  devices: string | null;
  physical_devices: string[];
  /** Its launch group (null when no `pipeline:planned` named it). */
  group: number | null;
  bars: TimelineBar[];
  waits: TimelineWait[];
  /** When its lock phase first started, ms since the bring-up start. */
  started: number | null;
  ready: number | null;
  /** The error code of its failure, if it failed. */
  failed: string | null;
  /** The sentence the page shows: what it waited for, or `started at once`. */
  why: string;
}

/** A run's bring-up, reduced from its events. */
export interface TimelineModel {
  runId: string;
  /** The last moment drawn, ms since the bring-up start. */
  end: number;
  /** In launch-group order, plan order within a group. */
  rows: TimelineRow[];
}

/** The time axis for a span of `spanMs` with about `target` (default 6) steps, never fewer than 3. */
export function axisTicks(spanMs: number, target?: number): Axis;
/** Reduces a run's events, in the order they were emitted, to one row per replica. */
export function timelineModel(events: readonly OmniEvent[]): TimelineModel;
/** The self-contained HTML page: the SVG picture and the same data as a table. */
export function renderTimeline(model: TimelineModel, title: string): string;

/** The plugin: `options.out` (default `timeline.html`) is resolved against `context.baseDir`. */
export default function timelinePlugin(options?: { out?: string }, context?: { baseDir?: string }): OmnistagePlugin;
