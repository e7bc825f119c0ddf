/**
 * Strategy files (`--strategy-config FILE`, upstream #4281, fixtures SOURCES.md §7): per
 * `model_stage` role, a list of parallel axes that write tp/dp/pp/ep into the stage's engine args
 * and `stage_replica` into `runtime.num_replicas` (the stage's `devices` become a per-replica
 * template), plus the replica balancing policy. Every rule upstream enforces is an error here,
 * located in the strategy file.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { OmniError, type SourceLocation } from '../errors.js';
import { splitDeviceList } from '../planning/device-ids.js';
import { parseSourced, readConfigText, type ReadFile } from './load.js';
import { entryLocation, withEntries, type SourcedEntry, type SourcedMap, type SourcedNode } from './sourced.js';
import type { StageDraft } from './draft.js';
import type { ReplicaBalance } from './types.js';

const KINDS = [
  'tp',
  'dp',
  'pp',
  'ep',
  'sp_ulysses',
  'sp_ring',
  'cfg',
  'vae_pp',
  'hsdp',
  'stage_pp',
  'stage_replica',
  'cp',
];
const TRANSLATABLE = ['dp', 'tp', 'pp', 'ep', 'stage_replica'];
const ENGINE_ARG: Readonly<Record<string, string>> = {
  tp: 'tensor_parallel_size',
  dp: 'data_parallel_size',
  pp: 'pipeline_parallel_size',
};
/** Upstream routing → omnistage's router policy. `random` has no counterpart; round-robin spreads the same. */
const BALANCE: Readonly<Record<string, ReplicaBalance>> = {
  round_robin: 'round-robin',
  least_queue: 'least-inflight',
  random: 'round-robin',
};

interface Axis {
  kind: string;
  name: string;
  size: number;
  routing: string | undefined;
  loc: SourceLocation;
}

export interface StrategyResult {
  stages: StageDraft[];
  balance: ReplicaBalance | undefined;
  warnings: Diagnostic[];
}

/** Reads, checks and applies a strategy file to the merged stages (before --stage-overrides). */
export async function applyStrategyFile(
  path: string,
  stages: readonly StageDraft[],
  readFile: ReadFile,
): Promise<StrategyResult> {
  const doc = parseSourced(await readConfigText(path, readFile), path);
  const fail = (message: string, loc: SourceLocation, hint: string): OmniError =>
    new OmniError('OMNI_CONFIG_STRATEGY', message, { location: loc, hint });
  if (doc.root.kind !== 'map')
    throw fail(
      `strategy file '${path}' did not parse to a mapping.`,
      doc.root.loc,
      'Write `strategies: {<model_stage>: [{axis: tp, size: 2}]}`.',
    );
  const wrapped = doc.root.entries.get('strategies');
  const roles = wrapped ? wrapped.node : doc.root;
  if (roles.kind !== 'map') {
    throw fail(
      "strategy file must contain a 'strategies' mapping of role -> list of axes.",
      roles.loc,
      'Map each model_stage to a list of axes.',
    );
  }
  const out = [...stages];
  const warnings: Diagnostic[] = [];
  let balance: { value: ReplicaBalance; role: string; loc: SourceLocation } | undefined;
  for (const [role, entry] of roles.entries) {
    const axes = readAxes(role, entry, fail);
    const idx = matchRole(role, entry, out, fail);
    const target = out[idx];
    if (!target) continue;
    out[idx] = applyAxes(role, axes, target, fail);
    const replica = axes.find((a) => a.kind === 'stage_replica');
    if (replica && replica.size > 1) {
      const policy = replica.routing ?? 'round_robin';
      const value = BALANCE[policy];
      if (value === undefined)
        throw fail(
          `stage_replica axis '${replica.name}' routing_policy '${policy}' has no omni LB policy.`,
          replica.loc,
          'Use routing: round_robin, least_queue or random.',
        );
      if (policy === 'random') {
        warnings.push(
          diagnostic(
            'OMNI_WARN_STRATEGY_ROUTING',
            `routing: random of role '${role}' is served round-robin (omnistage has no random balancing).`,
            replica.loc,
            'Use routing: round_robin or least_queue.',
          ),
        );
      }
      if (balance && balance.value !== value) {
        throw fail(
          `role '${role}' derives balance '${value}' but role '${balance.role}' already derived '${balance.value}'.`,
          replica.loc,
          'The load-balancer policy is pipeline-wide; only one value is allowed.',
        );
      }
      balance = { value, role, loc: replica.loc };
    }
  }
  return { stages: out, balance: balance?.value, warnings };
}

type Fail = (message: string, loc: SourceLocation, hint: string) => OmniError;

function readAxes(role: string, entry: SourcedEntry, fail: Fail): Axis[] {
  if (entry.node.kind !== 'seq')
    throw fail(
      `role '${role}': expected a list of axis declarations, got ${entry.node.kind}.`,
      entryLocation(entry),
      'Write `- {axis: tp, size: 2}` items.',
    );
  const seen = new Set<string>();
  return entry.node.items.map((item) => {
    const axis = readAxis(role, item, fail);
    if (seen.has(axis.kind))
      throw fail(
        `axis kind '${axis.kind}' appears more than once in role '${role}'.`,
        axis.kindLoc,
        'Declare each axis once.',
      );
    seen.add(axis.kind);
    return checkAxisRouting(axis, fail);
  });
}

/** One axis declaration with the places its kind and routing were written. */
interface ReadAxis extends Axis {
  kindLoc: SourceLocation;
  routingLoc: SourceLocation;
  owner: SourcedNode | undefined;
}

/** Reads `{axis, size, routing?, name?}` and checks its kind and size. */
function readAxis(role: string, item: SourcedNode, fail: Fail): ReadAxis {
  if (item.kind !== 'map')
    throw fail(
      `role '${role}': each axis declaration must be a mapping, got ${item.kind}.`,
      item.loc,
      'Write `- {axis: tp, size: 2}`.',
    );
  const v = (k: string): SourcedNode | undefined => item.entries.get(k)?.node;
  const kindNode = v('axis');
  if (!kindNode || kindNode.kind !== 'scalar')
    throw fail(
      `role '${role}': each strategy entry needs an 'axis' field.`,
      item.loc,
      `Axes: ${TRANSLATABLE.join(', ')}.`,
    );
  const kind = String(kindNode.value);
  const sizeNode = v('size');
  if (!sizeNode)
    throw fail(`role '${role}': strategy entry for axis '${kind}' needs a 'size'.`, item.loc, 'Add `size: N`.');
  const size = sizeNode.kind === 'scalar' ? Number(sizeNode.value) : NaN;
  if (!Number.isInteger(size))
    throw fail(
      `role '${role}': axis '${kind}' size must be an integer, got ${JSON.stringify(sizeNode.kind === 'scalar' ? sizeNode.value : '…')}.`,
      sizeNode.loc,
      'Use a whole number.',
    );
  const routingNode = v('routing');
  const routing = routingNode?.kind === 'scalar' ? String(routingNode.value) : undefined;
  const routingLoc = routingNode?.loc ?? item.loc;
  if (routing !== undefined && kind !== 'dp' && kind !== 'stage_replica') {
    throw fail(
      `role '${role}': axis '${kind}' does not accept a 'routing' policy (only ['dp', 'stage_replica'] do).`,
      routingLoc,
      'Remove `routing`.',
    );
  }
  if (!KINDS.includes(kind))
    throw fail(
      `axis kind must be one of (${KINDS.join(', ')}), got '${kind}'.`,
      kindNode.loc,
      `Axes that apply today: ${TRANSLATABLE.join(', ')}.`,
    );
  if (size <= 0) throw fail(`axis size must be > 0, got ${size}.`, sizeNode.loc, 'Use 1 or more.');
  if (!TRANSLATABLE.includes(kind))
    throw fail(
      `axis kind '${kind}' is not translatable yet (supported: ${TRANSLATABLE.join(', ')}).`,
      kindNode.loc,
      'Remove this axis.',
    );
  const nameNode = v('name');
  const name = nameNode?.kind === 'scalar' ? String(nameNode.value) : kind;
  return { kind, name, size, routing, loc: item.loc, kindLoc: kindNode.loc, routingLoc, owner: v('l1_owner') };
}

/** Checks the axis's owner and routing policy; the axis without the places it was read from. */
function checkAxisRouting(axis: ReadAxis, fail: Fail): Axis {
  const { kind, name, size, routing, loc, routingLoc } = axis;
  checkOwner(kind, name, axis.owner, loc, fail);
  if (routing === 'hash')
    throw fail(
      `${kind} axis '${name}' requests key-stable (hash) routing, which is not supported.`,
      routingLoc,
      'Use round_robin or least_queue.',
    );
  if (kind === 'dp' && routing !== undefined && !['least_queue', 'random', 'round_robin'].includes(routing)) {
    throw fail(
      `dp axis '${name}' has invalid routing_policy '${routing}'; expected one of ['least_queue', 'random', 'round_robin'].`,
      routingLoc,
      'Fix the policy name.',
    );
  }
  return { kind, name, size, routing, loc };
}

function checkOwner(kind: string, name: string, node: SourcedNode | undefined, loc: SourceLocation, fail: Fail): void {
  if (node === undefined) return;
  const owner = node.kind === 'scalar' ? String(node.value) : '';
  if (owner !== 'engine' && owner !== 'delegated')
    throw fail(
      `axis '${kind}' has invalid l1_owner '${owner}'; expected one of ['delegated', 'engine'].`,
      node.loc,
      'Remove l1_owner or fix it.',
    );
  const want = kind === 'stage_replica' ? 'delegated' : 'engine';
  if (owner !== want)
    throw fail(
      `${kind} axis '${name}' must have l1_owner '${want}', got '${owner}'.`,
      loc,
      kind === 'dp'
        ? "For request fan-out across independent replicas use a 'stage_replica' axis."
        : `Remove l1_owner or set it to ${want}.`,
    );
}

function matchRole(role: string, entry: SourcedEntry, stages: readonly StageDraft[], fail: Fail): number {
  const roleOf = (s: StageDraft): string | undefined => {
    const args = s.node.entries.get('engine_args')?.node;
    const ms = args?.kind === 'map' ? args.entries.get('model_stage')?.node : undefined;
    return ms?.kind === 'scalar' && typeof ms.value === 'string' ? ms.value : undefined;
  };
  const hits = stages.flatMap((s, i) => (roleOf(s) === role ? [i] : []));
  if (hits.length === 1) return hits[0] ?? 0;
  const available = stages.map((s) => `'${roleOf(s) ?? '?'}'(id=${s.stageId})`).join(', ');
  throw fail(
    hits.length === 0
      ? `strategy role model_stage='${role}' did not match any stage; available stages: ${available}.`
      : `strategy role model_stage='${role}' is ambiguous; it matched ${hits.length} stages.`,
    entry.keyLoc,
    'Name a role by the model_stage of exactly one stage (see `omnistage plan`).',
  );
}

function applyAxes(role: string, axes: readonly Axis[], stage: StageDraft, fail: Fail): StageDraft {
  const argsEntry = stage.node.entries.get('engine_args');
  const rtEntry = stage.node.entries.get('runtime');
  let args = argsEntry?.node.kind === 'map' ? argsEntry.node : undefined;
  let runtime = rtEntry?.node.kind === 'map' ? rtEntry.node : undefined;
  if (!args || !runtime || !argsEntry || !rtEntry) return stage;
  const size = (k: string): number => axes.find((a) => a.kind === k)?.size ?? 1;
  for (const a of axes) {
    const put = (map: SourcedMap, key: string, value: number | boolean, unset: number | undefined): SourcedMap => {
      const prev = map.entries.get(key);
      const prevValue = prev?.node.kind === 'scalar' ? prev.node.value : undefined;
      if (prev && !prev.node.synthetic && prevValue !== value && prevValue !== unset) {
        throw new OmniError(
          'OMNI_CONFIG_STRATEGY',
          `role '${role}': strategy derives ${key}=${String(value)} but the deploy config already set ${key}=${String(prevValue)}.`,
          {
            location: a.loc,
            related: [entryLocation(prev)],
            hint: 'Remove one of them (the strategy is the single writer for the axes it declares).',
          },
        );
      }
      return withEntries(map, { key, keyLoc: a.loc, node: { kind: 'scalar', value, loc: a.loc } });
    };
    if (a.kind === 'stage_replica') runtime = put(runtime, 'num_replicas', a.size, 1);
    else if (a.kind === 'ep') {
      if (a.size !== size('tp') * size('dp')) {
        throw fail(
          `ep axis size ${a.size} must equal tensor_parallel_size*data_parallel_size (=${size('tp') * size('dp')}).`,
          a.loc,
          'Dense expert parallelism shards experts across exactly those ranks.',
        );
      }
      args = put(args, 'enable_expert_parallel', true, undefined);
    } else args = put(args, ENGINE_ARG[a.kind] ?? a.kind, a.size, undefined);
  }
  checkDevices(role, runtime, size('tp') * size('dp') * size('pp'), size('stage_replica'), axes[0]?.loc, fail);
  return { ...stage, node: withEntries(stage.node, { ...argsEntry, node: args }, { ...rtEntry, node: runtime }) };
}

/** Upstream's pre-spawn check: `devices` lists one replica's world (a template) or all replicas' (a pool). */
function checkDevices(
  role: string,
  runtime: SourcedMap,
  world: number,
  replicas: number,
  loc: SourceLocation | undefined,
  fail: Fail,
): void {
  const devices = runtime.entries.get('devices');
  if (!devices || devices.node.kind !== 'scalar' || devices.node.value === null || devices.node.value === '') return;
  const count = splitDeviceList(String(devices.node.value)).length;
  if (count === world || count === replicas * world) return;
  throw fail(
    `role '${role}': declared ${count} device id(s) but the strategy world size is ${world}.`,
    entryLocation(devices),
    `Provide either ${world} (per-replica template) or ${replicas * world} (num_replicas=${replicas} pool).${loc ? ` The strategy is at ${loc.file}:${loc.line}.` : ''}`,
  );
}
