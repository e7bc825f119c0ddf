/**
 * Checks across stages: every stage id that a stage, connector key or edge refers to exists, and
 * every connector named by a stage is declared. Upstream silently drops such mistakes (a typo in a
 * connector name falls back to shared memory); here they are errors at the line to fix.
 */
import { OmniError } from '../errors.js';
import { didYouMeanPrefix } from './did-you-mean.js';
import type { LocationIndex } from './location-index.js';
import type { ConnectorSpec, EdgeConfig, StageConfig } from './types.js';

export function checkStageReferences(
  stages: readonly StageConfig[],
  top: { connectors: Readonly<Record<string, ConnectorSpec>>; edges: readonly EdgeConfig[]; locations: LocationIndex },
): void {
  const ids = stages.map((s) => s.stage_id);
  const known = `Known stage ids: ${ids.join(', ')}.`;
  const seen = new Map<number, StageConfig>();
  for (const stage of stages) {
    const first = seen.get(stage.stage_id);
    if (first) {
      throw new OmniError('OMNI_CONFIG_INVALID', `Duplicate stage_id ${stage.stage_id}: two stages use the same id.`, {
        location: stage.locations.at('stage_id'),
        related: [first.locations.at('stage_id')],
        hint: 'Give every stage a unique stage_id.',
        context: { stage_id: stage.stage_id },
      });
    }
    seen.set(stage.stage_id, stage);
  }

  for (const stage of stages) {
    stage.engine_input_source.forEach((src, i) => {
      if (src === stage.stage_id || !ids.includes(src)) {
        const what = src === stage.stage_id ? 'its own id' : `stage ${src}, which does not exist`;
        throw new OmniError(
          'OMNI_CONFIG_INVALID',
          `Stage ${stage.stage_id} takes input from ${what} (engine_input_source).`,
          {
            location: stage.locations.at(['engine_input_source', i]),
            hint: `List the ids of upstream stages only. ${known}`,
            context: { stage_id: stage.stage_id },
          },
        );
      }
    });
    checkConnectorMap(stage, 'input_connectors', 'from_stage_', ids, top.connectors);
    checkConnectorMap(stage, 'output_connectors', 'to_stage_', ids, top.connectors);
  }

  top.edges.forEach((edge, i) => {
    for (const end of ['from', 'to'] as const) {
      if (!ids.includes(edge[end])) {
        throw new OmniError(
          'OMNI_CONFIG_CONNECTOR',
          `Edge ${i} (${edge.from} → ${edge.to}) refers to stage ${edge[end]}, which does not exist.`,
          {
            location: top.locations.at(['edges', i, end]),
            hint: known,
          },
        );
      }
    }
    checkEdgeMatchesInputs(edge, i, seen.get(edge.to), top.locations);
  });
}

/** An edge tunes the data flow between two stages, so the receiving stage must read the sender. */
function checkEdgeMatchesInputs(
  edge: EdgeConfig,
  i: number,
  to: StageConfig | undefined,
  locations: LocationIndex,
): void {
  if (to === undefined || to.engine_input_source.includes(edge.from)) return;
  const inputs = to.engine_input_source;
  const reads =
    inputs.length === 0
      ? 'takes the request as its input'
      : `takes input from stage${inputs.length > 1 ? 's' : ''} ${inputs.join(', ')} only`;
  throw new OmniError(
    'OMNI_CONFIG_CONNECTOR',
    `Edge ${i} (${edge.from} → ${edge.to}) contradicts engine_input_source: stage ${edge.to} ${reads}.`,
    {
      location: locations.at(['edges', i]),
      related: [to.locations.at('engine_input_source')],
      hint: `Remove the edge, or add stage ${edge.from} to stage ${edge.to}'s inputs (engine_input_source: [${[...inputs, edge.from].sort((a, b) => a - b).join(', ')}]).`,
      context: { stage_id: edge.to },
    },
  );
}

function checkConnectorMap(
  stage: StageConfig,
  field: 'input_connectors' | 'output_connectors',
  prefix: 'from_stage_' | 'to_stage_',
  ids: readonly number[],
  connectors: Readonly<Record<string, ConnectorSpec>>,
): void {
  for (const [key, ref] of Object.entries(stage[field])) {
    const loc = stage.locations.at([field, key]);
    const m = new RegExp(`^${prefix}(-?\\d+)$`).exec(key);
    const peer = m?.[1] === undefined ? undefined : Number(m[1]);
    if (peer === undefined || !ids.includes(peer) || peer === stage.stage_id) {
      const what = `\`${field}.${key}\` of stage ${stage.stage_id}`;
      const problem =
        peer === undefined
          ? `is not of the form ${prefix}<stage_id>`
          : `refers to stage ${peer}, which ${peer === stage.stage_id ? 'is the stage itself' : 'does not exist'}`;
      throw new OmniError('OMNI_CONFIG_CONNECTOR', `${what} ${problem}.`, {
        location: loc,
        hint: `Name the other end of the edge as ${prefix}<stage_id>. Known stage ids: ${ids.join(', ')}.`,
        context: { stage_id: stage.stage_id },
      });
    }
    if (typeof ref === 'string' && !Object.hasOwn(connectors, ref)) {
      const names = Object.keys(connectors);
      const declared =
        names.length > 0
          ? `Declared connectors: ${names.join(', ')}.`
          : 'Declare it under `connectors:` (deploy) or `runtime.connectors:` (legacy).';
      throw new OmniError(
        'OMNI_CONFIG_CONNECTOR',
        `Stage ${stage.stage_id} uses connector \`${ref}\` (${field}.${key}), which is not declared.`,
        {
          location: loc,
          hint: `${didYouMeanPrefix(ref, names)}${declared}`,
          context: { stage_id: stage.stage_id },
        },
      );
    }
  }
}

/**
 * The stage graph is a DAG fed from entry stages (those with no `engine_input_source`): a cycle
 * would recurse forever at run time. In a finite graph every stage that no entry stage can reach
 * lies in or behind a cycle, so finding the cycles also covers unreachable stages. The error names
 * the stages of the cycle at their `engine_input_source` lines.
 */
export function checkStageGraph(stages: readonly StageConfig[]): void {
  const byId = new Map(stages.map((s) => [s.stage_id, s]));
  const at = (s: StageConfig): string => {
    const l = s.locations.at('engine_input_source');
    return `stage ${s.stage_id} (${l.file.split('/').pop() ?? l.file}:${l.line})`;
  };
  const state = new Map<number, 'visiting' | 'done'>();
  const path: StageConfig[] = [];
  const visit = (s: StageConfig): void => {
    if (state.get(s.stage_id) === 'done') return;
    if (state.get(s.stage_id) === 'visiting') {
      const cycle = path.slice(path.indexOf(s));
      throw new OmniError(
        'OMNI_CONFIG_TOPOLOGY',
        `Stages take input from each other in a cycle, so no request reaches them: ${[...cycle, s].map(at).join(' ← ')}.`,
        {
          location: s.locations.at('engine_input_source'),
          related: cycle.filter((c) => c !== s).map((c) => c.locations.at('engine_input_source')),
          hint: 'Every request flows from entry stages (no engine_input_source) towards the final outputs; remove one of these inputs.',
          context: { stage_ids: cycle.map((c) => c.stage_id) },
        },
      );
    }
    state.set(s.stage_id, 'visiting');
    path.push(s);
    for (const src of s.engine_input_source) {
      const from = byId.get(src);
      if (from) visit(from);
    }
    path.pop();
    state.set(s.stage_id, 'done');
  };
  for (const s of stages) visit(s);
}
