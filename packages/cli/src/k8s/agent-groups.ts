import { OmniError, type InitPlan } from '@omnistage/core';

/**
 * One kind of agent pod: the stages whose replicas share devices (a launch group of the plan), and
 * how many pods of that kind the plan needs. Every pod gets `gpus` devices from the device plugin
 * and sees them as its own logical devices 0..gpus-1, so the stages' `devices` are rewritten into
 * that pod-local numbering (`deviceOverrides`, passed as `--stage-overrides`).
 */
export interface AgentGroup {
  /** `stages-1-2`: the workload's name suffix. */
  name: string;
  stages: number[];
  /** Replicas of each of those stages in one pod (`agent --replicas`). */
  replicasPerPod: number;
  /** Pods of this kind (StatefulSet replicas): launch groups of the plan with the same shape. */
  pods: number;
  /** Devices one pod needs (`nvidia.com/gpu`). */
  gpus: number;
  /** Per stage id, its devices in the pod's own numbering (`{"1": {"devices": "0,1"}}`). */
  deviceOverrides: Record<string, { devices: string }>;
}

interface GroupShape {
  stages: number[];
  replicasPerPod: number;
  gpus: number;
  deviceOverrides: Record<string, { devices: string }>;
}

/** The shape of one launch group: its stages, their replicas, and their devices renumbered from 0. */
function shapeOf(replicas: InitPlan['stages'][number]['replicas']): GroupShape {
  const physical = [...new Set(replicas.flatMap((r) => r.physical_devices))];
  const local = (id: string): number => physical.indexOf(id);
  const perStage = new Map<number, typeof replicas>();
  for (const r of replicas) perStage.set(r.stage_id, [...(perStage.get(r.stage_id) ?? []), r]);
  const stages = [...perStage.keys()].sort((a, b) => a - b);
  const counts = new Set(stages.map((s) => perStage.get(s)!.length));
  if (counts.size > 1) {
    throw new OmniError(
      'OMNI_USAGE',
      `stages ${stages.join(', ')} share devices but have different numbers of replicas on them, so no one agent pod can run them`,
      {
        hint: 'give each of those stages devices of its own (runtime.devices), or the same num_replicas, to deploy it on Kubernetes',
      },
    );
  }
  const deviceOverrides: Record<string, { devices: string }> = {};
  for (const s of stages) {
    const ids = [...new Set(perStage.get(s)!.flatMap((r) => r.physical_devices.map(local)))].sort((a, b) => a - b);
    deviceOverrides[String(s)] = { devices: ids.join(',') };
  }
  return { stages, replicasPerPod: [...counts][0]!, gpus: physical.length, deviceOverrides };
}

/**
 * The agent pods a plan needs: one kind per distinct launch-group shape (same stages, replicas and
 * device layout), with as many pods as the plan has such groups. Replicas whose devices overlap run
 * in one pod, as they would on one host: they share those GPUs and take the same device locks.
 */
export function agentGroups(plan: InitPlan): AgentGroup[] {
  const byGroup = new Map<number, InitPlan['stages'][number]['replicas']>();
  for (const r of plan.stages.flatMap((s) => s.replicas)) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), r]);
  const kinds = new Map<string, AgentGroup>();
  for (const replicas of byGroup.values()) {
    const shape = shapeOf(replicas);
    const key = JSON.stringify(shape);
    const known = kinds.get(key);
    if (known) known.pods++;
    else kinds.set(key, { name: `stages-${shape.stages.join('-')}`, pods: 1, ...shape });
  }
  const groups = [...kinds.values()];
  // Two kinds with the same stages (uneven device layouts) need distinct names.
  const seen = new Map<string, number>();
  for (const g of groups) {
    const n = seen.get(g.name) ?? 0;
    seen.set(g.name, n + 1);
    if (n > 0) g.name = `${g.name}-${n}`;
  }
  return groups;
}
