/**
 * A host and its GPUs on Kubernetes, checked in the plan (docs/kubernetes.md, "GPUs, device locks
 * and the device plugin"). The device plugin gives an agent pod its GPUs and names them in
 * NVIDIA_VISIBLE_DEVICES (UUIDs); the agent runs with CUDA_VISIBLE_DEVICES set to that list. The
 * generated `--stage-overrides` renumber each stage's devices into the pod's logical ids
 * 0..gpus-1, so the agent's plan maps them onto exactly the pod's GPUs: each replica's
 * CUDA_VISIBLE_DEVICES and its device locks name those UUIDs, never a GPU the pod was not given.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Omnistage, loadPipelineConfig, planPipeline } from '@omnistage/core';
import { diffusionPlugin } from '@omnistage/plugin-diffusion';
import { kvConnectorPlugin } from '@omnistage/plugin-kv-connector';
import { llmPlugin } from '@omnistage/plugin-llm';
import { upstreamPipelinesPlugin } from '@omnistage/plugin-upstream-pipelines';
import { agentGroups, type AgentGroup } from '../src/k8s/agent-groups.js';
import { REPO_ROOT } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'omni-k8s-devices-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const omni = () =>
  new Omnistage({ plugins: [llmPlugin(), diffusionPlugin(), kvConnectorPlugin(), upstreamPipelinesPlugin()] });

/** The cluster-wide plan the manifests are made from (virtual devices, as `omnistage k8s` plans). */
async function groupsOf(file: string): Promise<AgentGroup[]> {
  const o = omni();
  const config = await loadPipelineConfig(file, { platform: 'cpu', pipelines: () => o.pipelines });
  return agentGroups(await planPipeline(o, config, { platform: 'cpu', engine: 'reference' }));
}

/** The plan an agent pod of `group` makes, with the GPUs the device plugin gave it. */
async function podPlan(file: string, group: AgentGroup, gpus: string[]) {
  const o = omni();
  const overrides = Object.fromEntries(
    Object.entries(group.deviceOverrides).map(([id, o]) => [id, { ...o, num_replicas: group.replicasPerPod }]),
  );
  const config = await loadPipelineConfig(file, {
    platform: 'cuda',
    stageOverrides: JSON.stringify(overrides),
    pipelines: () => o.pipelines,
  });
  const plan = await planPipeline(o, config, {
    platform: 'cuda',
    engine: 'reference',
    env: { CUDA_VISIBLE_DEVICES: gpus.join(',') },
    hostStages: group.stages,
  });
  return plan.stages.filter((s) => group.stages.includes(s.stage_id)).flatMap((s) => s.replicas);
}

const uuid = (n: number) => `GPU-${String(n).repeat(8)}-aaaa-bbbb-cccc-${String(n).repeat(12)}`;

describe('agent pods see only their GPUs; logical ids map onto them', () => {
  it("Qwen3-Omni: the talker and code2wav share one GPU in one pod, and lock that GPU's UUID", async () => {
    const file = join(REPO_ROOT, 'examples', 'upstream-dry-run', 'configs', 'qwen3_omni_moe.yaml');
    const groups = await groupsOf(file);
    const shared = groups.find((g) => g.stages.join() === '1,2')!;
    expect(shared).toMatchObject({ gpus: 1, pods: 1, deviceOverrides: { 1: { devices: '0' }, 2: { devices: '0' } } });
    const replicas = await podPlan(file, shared, [uuid(7)]);
    expect(replicas).toHaveLength(2);
    for (const r of replicas) {
      expect(r.physical_devices).toEqual([uuid(7)]);
      expect(r.lock_devices).toEqual([uuid(7)]);
      expect(r.worker.env?.CUDA_VISIBLE_DEVICES).toBe(uuid(7));
    }
  });

  it('a tensor-parallel stage on devices 2,3 with two replicas: two pods of 2 GPUs, each replica on its own pod GPUs', async () => {
    const file = join(dir, 'tp.yaml');
    writeFileSync(
      file,
      [
        'stage_args:',
        '  - stage_id: 0',
        '    stage_type: llm',
        '    runtime: {devices: "0"}',
        '    engine_args: {model_stage: thinker, gpu_memory_utilization: 0.5}',
        '  - stage_id: 1',
        '    stage_type: llm',
        '    runtime: {devices: "2,3,4,5", num_replicas: 2}',
        '    engine_args: {model_stage: talker, tensor_parallel_size: 2, gpu_memory_utilization: 0.5}',
        '    engine_input_source: [0]',
        '    final_output: true',
        '    final_output_type: text',
        '',
      ].join('\n'),
    );
    const groups = await groupsOf(file);
    const tp = groups.find((g) => g.stages.join() === '1')!;
    expect(tp).toMatchObject({ gpus: 2, pods: 2, replicasPerPod: 1, deviceOverrides: { 1: { devices: '0,1' } } });
    const pod = [uuid(3), uuid(4)];
    const [replica, ...more] = await podPlan(file, tp, pod);
    expect(more).toEqual([]);
    expect(replica!.physical_devices).toEqual(pod);
    expect(replica!.lock_devices).toEqual([...pod].sort());
    expect(replica!.worker.env?.CUDA_VISIBLE_DEVICES).toBe(pod.join(','));
  });
});
