import { OmniError, suggestions } from '@omnistage/core';
import type { ConnectorRef, ConnectorSpec, PipelineConfig, SourceLocation, StageConfig } from '@omnistage/core';
import { isPlainObject } from './plain-object.js';
import { parseStageIdSuffix } from './stage-ids.js';
import { edgeKey } from './types.js';
import type { EdgeDeclaration, OmniTransferConfig, TransferEdge } from './types.js';

/** Connector class filled in for edges that name no connector. */
export const DEFAULT_EDGE_CONNECTOR = 'SharedMemoryConnector';
/** Payloads above this many bytes go through shared memory, smaller ones inline (upstream default). */
export const DEFAULT_SHM_THRESHOLD_BYTES = 65536;

interface MutableEdge {
  from: string;
  to: string;
  spec: ConnectorSpec;
  auto: boolean;
  declarations: EdgeDeclaration[];
}

type Side = 'input_connectors' | 'output_connectors';

const PREFIX: Record<Side, string> = { input_connectors: 'from_stage_', output_connectors: 'to_stage_' };

/**
 * Parses the connectors and edges of a normalised pipeline into an {@link OmniTransferConfig}
 * (upstream `load_omni_transfer_config_for_model` in `vllm_omni/engine/stage_init_utils.py`), or null when the pipeline has no edge at all.
 *
 * Order, which is observable through "first incoming edge": stage by stage, its `input_connectors`
 * then its `output_connectors` (first declaration of an edge wins), then the pipeline's `edges:`,
 * then every stage's `engine_input_source`; the last two only add edges that are still missing,
 * with a {@link DEFAULT_EDGE_CONNECTOR}.
 *
 * Unlike upstream, whose init layer swallows these into "no transfer config" (and so silently runs
 * without the configured connectors), a reference to an undefined connector, two sides of one edge
 * naming different connector classes, and a key that is not `from_stage_<id>` / `to_stage_<id>`
 * throw `OMNI_CONFIG_CONNECTOR` pointing at the YAML.
 */
export function loadOmniTransferConfig(pipeline: PipelineConfig): OmniTransferConfig | null {
  const edges = new Map<string, MutableEdge>();

  for (const stage of pipeline.stages) {
    for (const side of ['input_connectors', 'output_connectors'] as const) {
      for (const [key, ref] of Object.entries(stage[side])) {
        const path = `${side}.${key}`;
        const location = stage.locations.at(path);
        const peer = parseSideKey(stage, side, key, location);
        const self = String(stage.stage_id);
        const [from, to] = side === 'input_connectors' ? [String(peer), self] : [self, String(peer)];
        const { spec, connectorRef } = resolveRef(pipeline, stage, path, ref, location);
        const declaration: EdgeDeclaration = {
          source: side,
          stage_id: stage.stage_id,
          path,
          connector_ref: connectorRef,
          location,
        };
        const existing = edges.get(edgeKey(from, to));
        if (existing === undefined) {
          edges.set(edgeKey(from, to), { from, to, spec, auto: false, declarations: [declaration] });
          continue;
        }
        if (existing.spec.name !== spec.name) throw typeMismatch(existing, declaration, spec.name);
        // Same class on both sides: upstream keeps the first spec (its `extra` wins) — so do we.
        existing.declarations.push(declaration);
      }
    }
  }

  pipeline.edges.forEach((edge, i) => {
    const path = `edges.${i}`;
    const location = pipeline.locations.at(path);
    for (const end of ['from', 'to'] as const) {
      if (!Number.isSafeInteger(edge[end])) {
        throw new OmniError('OMNI_CONFIG_CONNECTOR', `edges[${i}].${end} must be a stage id (an integer).`, {
          location: pipeline.locations.at(`${path}.${end}`),
          hint: 'Write each edge as {from: <stage_id>, to: <stage_id>}.',
        });
      }
    }
    addImplied(edges, String(edge.from), String(edge.to), {
      source: 'edges',
      stage_id: null,
      path,
      connector_ref: null,
      location,
    });
  });

  for (const stage of pipeline.stages) {
    stage.engine_input_source.forEach((source, j) => {
      const path = `engine_input_source.${j}`;
      addImplied(edges, String(source), String(stage.stage_id), {
        source: 'engine_input_source',
        stage_id: stage.stage_id,
        path,
        connector_ref: null,
        location: stage.locations.at(path),
      });
    });
  }

  if (edges.size === 0) return null;
  const frozen = new Map<string, TransferEdge>();
  for (const [key, edge] of edges) frozen.set(key, { ...edge, declarations: [...edge.declarations] });
  return { edges: frozen };
}

/** The peer stage id named by a `from_stage_<id>` / `to_stage_<id>` key, or an error at the key. */
function parseSideKey(stage: StageConfig, side: Side, key: string, location: SourceLocation): number {
  const prefix = PREFIX[side];
  const id = key.startsWith(prefix) ? parseStageIdSuffix(key.slice(prefix.length)) : null;
  if (id !== null) return id;
  // Upstream strips the prefix with str.replace and keys the edge by whatever is left, so
  // `from_stage_x` becomes an edge from a stage "x" that never sends anything.
  const other = side === 'input_connectors' ? 'output_connectors' : 'input_connectors';
  const swapped = key.startsWith(PREFIX[other]);
  return fail(
    `${side} key '${key}' of stage ${stage.stage_id} is not of the form ${prefix}<stage_id>.`,
    location,
    swapped
      ? `'${PREFIX[other]}…' keys belong under ${other}; under ${side} write ${prefix}<stage_id>.`
      : `Name the ${side === 'input_connectors' ? 'sending' : 'receiving'} stage by its stage_id, e.g. ${prefix}0.`,
    stage.stage_id,
  );
}

function resolveRef(
  pipeline: PipelineConfig,
  stage: StageConfig,
  path: string,
  ref: ConnectorRef,
  location: SourceLocation,
): { spec: ConnectorSpec; connectorRef: string | null } {
  if (typeof ref === 'string') {
    const named = Object.hasOwn(pipeline.connectors, ref) ? pipeline.connectors[ref] : undefined;
    if (named === undefined) throw undefinedReference(pipeline, stage, path, ref, location);
    const spec = checkSpec(named, pipeline.locations.at(`connectors.${ref}`), `connector '${ref}'`, stage.stage_id);
    return { spec, connectorRef: ref };
  }
  return { spec: checkSpec(ref, location, `inline connector at ${path}`, stage.stage_id), connectorRef: null };
}

/** A defensive copy of a spec, after checking its shape (the loader's types are not a guarantee for JS callers). */
function checkSpec(value: unknown, location: SourceLocation, what: string, stageId: number): ConnectorSpec {
  if (!isPlainObject(value) || typeof value.name !== 'string' || value.name === '') {
    return fail(
      `${what} must be {name: <ConnectorClass>, extra: {...}}.`,
      location,
      'Give the connector class in `name`.',
      stageId,
    );
  }
  const extra = value.extra ?? {};
  if (!isPlainObject(extra)) {
    return fail(
      `${what}: extra must be a mapping.`,
      location,
      'Write extra as key: value pairs, or leave it out.',
      stageId,
    );
  }
  // Shallow copy, as upstream does: edges never share a mutable `extra` with the pipeline config.
  return { name: value.name, extra: { ...extra } };
}

function addImplied(edges: Map<string, MutableEdge>, from: string, to: string, declaration: EdgeDeclaration): void {
  const existing = edges.get(edgeKey(from, to));
  if (existing !== undefined) {
    existing.declarations.push(declaration);
    return;
  }
  edges.set(edgeKey(from, to), {
    from,
    to,
    spec: { name: DEFAULT_EDGE_CONNECTOR, extra: { shm_threshold_bytes: DEFAULT_SHM_THRESHOLD_BYTES } },
    auto: true,
    declarations: [declaration],
  });
}

function undefinedReference(
  pipeline: PipelineConfig,
  stage: StageConfig,
  path: string,
  ref: string,
  location: SourceLocation,
): OmniError {
  const defined = Object.keys(pipeline.connectors);
  const guess = suggestions(ref, defined, 1)[0] ?? null;
  const hint =
    defined.length === 0
      ? 'No connectors are defined. Define it under `connectors:` (`runtime.connectors:` in stage_args files), or write it inline as {name: <ConnectorClass>, extra: {...}}.'
      : `${guess === null ? '' : `Did you mean '${guess}'? `}Defined connectors: ${defined.map((n) => `'${n}'`).join(', ')}.`;
  const block = ['connectors', 'runtime.connectors'].find((p) => pipeline.locations.has(p));
  return new OmniError(
    'OMNI_CONFIG_CONNECTOR',
    `Undefined connector reference '${ref}' in ${path} of stage ${stage.stage_id}.`,
    {
      location,
      related: block === undefined ? [] : [pipeline.locations.at(block)],
      hint,
      context: { stage_id: stage.stage_id },
    },
  );
}

function typeMismatch(existing: MutableEdge, declaration: EdgeDeclaration, name: string): OmniError {
  const first = existing.declarations[0];
  const firstWhere =
    first === undefined ? 'an earlier declaration' : `${first.path} of stage ${String(first.stage_id)}`;
  return new OmniError(
    'OMNI_CONFIG_CONNECTOR',
    `Connector type mismatch for edge ${existing.from}->${existing.to}: ${firstWhere} uses '${existing.spec.name}', ` +
      `but ${declaration.path} of stage ${String(declaration.stage_id)} specifies '${name}'.`,
    {
      location: declaration.location,
      related: first === undefined ? [] : [first.location],
      hint: 'Both ends of an edge must use the same connector class; name the same connector on both sides, or declare it on one side only.',
      context: { stage_id: declaration.stage_id ?? undefined },
    },
  );
}

function fail(message: string, location: SourceLocation, hint: string, stageId: number): never {
  throw new OmniError('OMNI_CONFIG_CONNECTOR', message, { location, hint, context: { stage_id: stageId } });
}
