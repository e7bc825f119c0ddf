import type { InitPlan, StagePlan, TransferPlan } from '../planning/types.js';

/**
 * The `omnistage plan --json` document: a stable contract other tools read (names kept, fields may
 * be added). Stage configs and source maps are left out; engine args and the worker are included
 * so a user can see exactly what each replica will be started with.
 */
export function planToJson(plan: InitPlan): Record<string, unknown> {
  return {
    platform: plan.platform,
    device_env: plan.device_env,
    visible_devices: plan.visible_devices,
    topology: { ...plan.topology },
    stages: plan.stages.map((s) => ({
      stage_idx: s.stage_idx,
      stage_id: s.stage_id,
      stage_type: s.stage_type,
      ...stageTopology(s),
      topology: { source: plan.topology.source, pipeline: plan.topology.pipeline },
      num_replicas: s.num_replicas,
      devices_per_replica: s.devices_per_replica,
      replicas: s.replicas.map((r) => ({
        replica_id: r.replica_id,
        launch_mode: r.launch_mode,
        devices: r.devices,
        physical_devices: r.physical_devices,
        lock_devices: r.lock_devices,
        group: r.group,
        engine: s.engine,
        engine_args: r.engine_args,
        worker: {
          command: r.worker.command,
          args: r.worker.args,
          env: r.worker.env,
          attach: r.worker.attach,
          ...(r.worker.inline ? { inline: true } : {}),
          ...(r.worker.port === undefined ? {} : { port: r.worker.port }),
          ...(r.worker.readiness_url === undefined ? {} : { readiness_url: r.worker.readiness_url }),
        },
      })),
    })),
    groups: plan.groups.map((g) => ({ id: g.id, lock_devices: g.lock_devices, replicas: g.replicas })),
    transfers: plan.transfers.map((t) => ({ ...t })),
    warnings: plan.warnings.map((w) => ({
      code: w.code,
      message: w.message,
      file: w.file,
      line: w.line,
      col: w.col,
      ...(w.hint ? { hint: w.hint } : {}),
    })),
  };
}

/** The topology fields of a stage, from its config. */
function stageTopology(s: StagePlan): Record<string, unknown> {
  const modelStage = s.stage.engine_args['model_stage'];
  return {
    model_stage: typeof modelStage === 'string' ? modelStage : null,
    engine_input_source: [...s.stage.engine_input_source],
    final_output: s.stage.final_output,
    final_output_type: s.stage.final_output_type,
  };
}

/** The plan as a fixed-width table (stage, replica, logical → physical devices, lock set, group, engine). */
export function planToTable(plan: InitPlan): string {
  const rows: string[][] = [
    ['stage', 'model_stage', 'type', 'inputs', 'output', 'replica', 'devices', 'physical', 'locks', 'group', 'engine'],
  ];
  for (const s of plan.stages) {
    const t = stageTopology(s);
    const inputs = (t['engine_input_source'] as number[]).join(',') || '-';
    const output = t['final_output'] ? String(t['final_output_type'] ?? 'final') : '-';
    for (const r of s.replicas) {
      rows.push([
        String(s.stage_id),
        String(t['model_stage'] ?? '-'),
        s.stage_type,
        inputs,
        output,
        `${r.replica_id}/${s.num_replicas}`,
        r.devices ?? '(all)',
        r.physical_devices.join(',') || '-',
        r.lock_devices.join(',') || '-',
        String(r.group),
        s.engine,
      ]);
    }
  }
  const t = plan.topology;
  const source =
    t.source === 'registry'
      ? `topology: pipeline ${t.pipeline ?? '?'} (registry, selected by ${t.selected_by ?? '?'})`
      : 'topology: spelt out in the file';
  const header = `platform ${plan.platform} (${plan.device_env.join(' + ')}), visible devices: ${plan.visible_devices.join(',') || 'none'}\n${source}`;
  return [header, ...fixedWidth(rows), ...transferTable(plan)].join('\n');
}

/** Rows padded to their columns' widths, a dashed rule under the first (the header). */
function fixedWidth(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines;
}

const CARRIED_BY: Record<TransferPlan['carried_by'], (t: TransferPlan) => string> = {
  shm: (t) =>
    `shared memory above ${t.threshold_bytes ?? 0} bytes, inline below${t.across_hosts ? '; may cross hosts: fetched over TCP from the producer host' : ''}`,
  plugin: () => "the plugin's connector class",
  engine: (t) =>
    t.flow === undefined
      ? 'the engine itself (KV cache); outputs through the router'
      : `the engine itself (KV cache); ${t.flow}`,
  inline: (t) =>
    t.across_hosts
      ? 'inline over the control channel (above 4 MiB shared memory); may cross hosts: fetched over TCP from the producer host'
      : 'inline, in the control messages',
};

/** The edges of the stage DAG and how each carries data (nothing for a single stage). */
function transferTable(plan: InitPlan): string[] {
  if (plan.transfers.length === 0) return [];
  const rows = [
    ['transfer', 'connector', 'streams', 'carried by'],
    ...plan.transfers.map((t) => [
      `${t.from} -> ${t.to}`,
      t.connector ?? '-',
      t.streaming ? `chunks (${t.streaming.processor})` : 'no',
      CARRIED_BY[t.carried_by](t),
    ]),
  ];
  return ['', ...fixedWidth(rows)];
}
