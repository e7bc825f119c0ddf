/**
 * The last step of loading: validated legacy-shaped drafts become typed {@link StageConfig}s and
 * the pipeline-level values, with upstream's defaults and their source locations.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import * as z from 'zod';
import { LocationIndex } from './location-index.js';
import { validateSourced, type IssueReporting } from './issues.js';
import {
  connectorSpecSchema,
  edgeSchema,
  legacyStageSchema,
  livenessFields,
  pluginRefSchema,
  LEGACY_EXTRA_KEYS,
} from './schema.js';
import { OmniError } from '../errors.js';
import { DEFAULT_HEARTBEAT_MS } from '../orchestrate/liveness-defaults.js';
import { DEFAULT_RESTART_POLICY, createStageConfig } from './stage-defaults.js';
import { locate, nodeAt, recordLocations, type SourcedMap } from './sourced.js';
import type { StageDraft } from './draft.js';
import type {
  ConnectorRef,
  ConnectorSpec,
  EdgeConfig,
  LivenessConfig,
  PluginRef,
  RestartPolicy,
  StageConfig,
} from './types.js';

const STAGE_REPORTING: IssueReporting = {
  invalidCode: 'OMNI_CONFIG_INVALID',
  unknownKeyCode: 'OMNI_CONFIG_UNKNOWN_KEY',
};

/** A typed stage from its draft; `stageIdx` is its position in the pipeline; `minReady` the pipeline's default. */
export function buildStage(draft: StageDraft, stageIdx: number, minReady = 1): StageConfig {
  const data = validateSourced(legacyStageSchema, draft.node, { ...STAGE_REPORTING, label: `stage ${draft.stageId}` });
  const locations = new LocationIndex(draft.loc);
  recordLocations(draft.node, '', locations);
  const rt = data.runtime ?? {};
  const extras: Record<string, unknown> = { ...draft.extras };
  for (const key of LEGACY_EXTRA_KEYS) if (data[key] !== undefined) extras[key] = data[key];
  return createStageConfig({
    stage_idx: stageIdx,
    stage_id: data.stage_id,
    stage_type: data.stage_type ?? 'llm',
    engine: data.engine ?? null,
    engine_args: { ...(data.engine_args ?? {}) },
    engine_input_source: data.engine_input_source ?? [],
    final_output: data.final_output ?? false,
    final_output_type: data.final_output_type ?? null,
    is_comprehension: data.is_comprehension ?? false,
    default_sampling_params: { ...(data.default_sampling_params ?? {}) },
    custom_process_input_func: data.custom_process_input_func ?? null,
    prompt_expand_func: data.prompt_expand_func ?? null,
    cfg_kv_collect_func: data.cfg_kv_collect_func ?? null,
    input_connectors: connectorRefs(data.input_connectors),
    output_connectors: connectorRefs(data.output_connectors),
    extras,
    locations,
    ...(draft.overrideArgs ? { override_args: [...draft.overrideArgs] } : {}),
    runtime: {
      process: rt.process ?? true,
      devices: rt.devices === null || rt.devices === undefined ? null : String(rt.devices),
      num_replicas: rt.num_replicas ?? 1,
      min_ready: rt.min_ready ?? minReady,
      env: pythonStrEnv(rt.env ?? {}),
      requires_multimodal_data: rt.requires_multimodal_data ?? false,
      restart: restartPolicy(rt.restart),
      ...(rt.max_inflight_per_replica === undefined ? {} : { max_inflight_per_replica: rt.max_inflight_per_replica }),
    },
  });
}

/** Environment values the way upstream stringifies them: Python `str()` of the YAML value. */
export function pythonStrEnv(env: Readonly<Record<string, string | number | boolean | null>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    out[k] = v === true ? 'True' : v === false ? 'False' : v === null ? 'None' : String(v);
  }
  return out;
}

type RestartInput = { [K in keyof RestartPolicy]?: RestartPolicy[K] | undefined };

function restartPolicy(input: RestartInput | RestartPolicy['policy'] | undefined): RestartPolicy {
  const r = typeof input === 'string' ? { policy: input } : input;
  return {
    policy: r?.policy ?? DEFAULT_RESTART_POLICY.policy,
    max_restarts: r?.max_restarts ?? DEFAULT_RESTART_POLICY.max_restarts,
    backoff_ms: r?.backoff_ms ?? DEFAULT_RESTART_POLICY.backoff_ms,
  };
}

function connectorRefs(
  refs:
    | Readonly<Record<string, string | { name: string; extra?: Record<string, unknown> | null | undefined }>>
    | null
    | undefined,
): Record<string, ConnectorRef> {
  const out: Record<string, ConnectorRef> = {};
  for (const [k, v] of Object.entries(refs ?? {}))
    out[k] = typeof v === 'string' ? v : { name: v.name, extra: { ...(v.extra ?? {}) } };
  return out;
}

const topSchema = z.object({
  connectors: z.record(z.string(), connectorSpecSchema).nullable().optional(),
  edges: z.array(edgeSchema).nullable().optional(),
  plugins: z.array(pluginRefSchema).nullable().optional(),
  model: z.string().nullable().optional(),
  session_mode: z.enum(['turn', 'duplex']).nullable().optional(),
  duplex_session: z.record(z.string(), z.number()).nullable().optional(),
  min_ready: z.int().min(1).nullable().optional(),
  // Legacy files: the whole top-level runtime block (connectors and edges are read above).
  runtime: z.object(livenessFields).nullable().optional(),
});

/** Pipeline-level values of a draft's normalised top-level map. */
export interface TopLevel {
  model: string | null;
  connectors: Record<string, ConnectorSpec>;
  edges: EdgeConfig[];
  plugins: PluginRef[];
  session_mode: 'turn' | 'duplex';
  duplex_session: Record<string, number>;
  /** `runtime.min_ready` of a legacy file: the default of every stage's (1 when absent). */
  min_ready: number;
  /** Absent when the file sets no liveness key. */
  liveness?: LivenessConfig;
  locations: LocationIndex;
}

export function buildTopLevel(top: SourcedMap, file: string): TopLevel {
  const data = validateSourced(topSchema, top, STAGE_REPORTING);
  const locations = new LocationIndex({ file, line: 1, col: 1 });
  recordLocations(top, '', locations);
  const connectors: Record<string, ConnectorSpec> = {};
  for (const [name, spec] of Object.entries(data.connectors ?? {}))
    connectors[name] = { name: spec.name, extra: { ...(spec.extra ?? {}) } };
  const edges = (data.edges ?? []).map((e) => ({ ...e }));
  const plugins = (data.plugins ?? []).map((p, i): PluginRef => {
    // Relative module paths are resolved against the file that declared them (which may be a
    // base_config file in another directory), so the loader need not know where they came from.
    const declaredIn = nodeAt(top, ['plugins', i])?.loc.file ?? file;
    if (typeof p === 'string') return { specifier: resolveModulePath(p, declaredIn), options: {} };
    const specifier = p.path !== undefined ? resolveModulePath(p.path, declaredIn, true) : (p.name ?? '');
    return { specifier, options: { ...(p.options ?? {}) } };
  });
  return {
    model: data.model ?? null,
    connectors,
    edges,
    plugins,
    session_mode: data.session_mode ?? 'turn',
    duplex_session: { ...(data.duplex_session ?? {}) },
    min_ready: data.min_ready ?? 1,
    ...livenessOf(data.runtime ?? {}, top),
    locations,
  };
}

/** The liveness keys the file sets; a heartbeat timeout that does not exceed the interval is an error. */
function livenessOf(runtime: LivenessConfig, top: SourcedMap): { liveness?: LivenessConfig } {
  const liveness: LivenessConfig = {};
  for (const key of Object.keys(livenessFields) as (keyof LivenessConfig)[])
    if (runtime[key] !== undefined) liveness[key] = runtime[key];
  if (Object.keys(liveness).length === 0) return {};
  const interval = liveness.heartbeat_interval_s ?? DEFAULT_HEARTBEAT_MS / 1000;
  const timeout = liveness.heartbeat_timeout_s;
  if (timeout !== undefined && timeout <= interval) {
    const given = liveness.heartbeat_interval_s === undefined ? `${interval} s, the default` : `${interval} s`;
    throw new OmniError(
      'OMNI_CONFIG_INVALID',
      `runtime.heartbeat_timeout_s (${timeout} s) must exceed runtime.heartbeat_interval_s (${given}): a replica would be declared unresponsive between two heartbeats.`,
      {
        location: locate(top, ['runtime', 'heartbeat_timeout_s']),
        hint: `Set heartbeat_timeout_s to several intervals (e.g. ${Math.round(interval * 5 * 100) / 100}), or shorten heartbeat_interval_s.`,
      },
    );
  }
  return { liveness };
}

function resolveModulePath(spec: string, declaredIn: string, isPath = false): string {
  const relative = spec.startsWith('./') || spec.startsWith('../');
  if (!(relative || isPath) || isAbsolute(spec) || !isAbsolute(declaredIn)) return spec;
  return resolve(dirname(declaredIn), spec);
}
