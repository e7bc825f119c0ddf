/**
 * The runtime settings omnistage adds to pipeline files: a stage's `max_inflight_per_replica`
 * (admission) and the pipeline-wide liveness keys of the top-level `runtime:` block.
 */
import { describe, expect, it } from 'vitest';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { livenessOptionsOf } from '../../src/orchestrate/liveness.js';
import { rejection, where } from './helpers.js';

const load = (text: string) => loadPipelineConfig({ text, path: '/cfg/pipeline.yaml' });

describe('runtime.max_inflight_per_replica', () => {
  it('is read per stage, in legacy files and deploy files (flat or nested)', async () => {
    const legacy = await load(
      'stage_args:\n  - stage_id: 0\n    runtime: { max_inflight_per_replica: 8 }\n  - stage_id: 1\n    engine_input_source: [0]\n',
    );
    expect(legacy.stages.map((s) => s.runtime.max_inflight_per_replica)).toEqual([8, undefined]);
    const deploy = await load(
      'stages:\n  - stage_id: 0\n    max_inflight_per_replica: 3\n    engine_input_source: []\n  - stage_id: 1\n    runtime: { max_inflight_per_replica: 5 }\n    engine_input_source: [0]\n',
    );
    expect(deploy.stages.map((s) => s.runtime.max_inflight_per_replica)).toEqual([3, 5]);
  });

  it('--stage-overrides sets it in the runtime (not as an engine arg), and refuses a bad value', async () => {
    const text = 'stage_args:\n  - stage_id: 0\n    runtime: { max_inflight_per_replica: 8 }\n';
    const config = await loadPipelineConfig(
      { text, path: '/cfg/pipeline.yaml' },
      { stageOverrides: '{"0": {"max_inflight_per_replica": 2}}' },
    );
    expect(config.stages[0]!.runtime.max_inflight_per_replica).toBe(2);
    expect(config.stages[0]!.engine_args['max_inflight_per_replica']).toBeUndefined();
    const err = await rejection(
      loadPipelineConfig(
        { text, path: '/cfg/pipeline.yaml' },
        { stageOverrides: '{"0": {"max_inflight_per_replica": 0}}' },
      ),
    );
    expect(err.message).toContain('must be ≥ 1');
    expect(where(err)).toMatch(/^<stage-overrides>:1:/);
  });

  it('refuses 0, fractions, strings and absurd sizes at the value', async () => {
    for (const [value, message] of [
      ['0', 'must be ≥ 1'],
      ['2.5', 'must be an integer'],
      ['"many"', 'must be an integer'],
      ['10000000', 'must be ≤ 1000000'],
    ] as const) {
      const err = await rejection(
        load(`stage_args:\n  - stage_id: 0\n    runtime:\n      max_inflight_per_replica: ${value}\n`),
      );
      expect([err.code, where(err)], value).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:4:33']);
      expect(err.message, value).toContain(message);
    }
  });
});

describe('runtime liveness settings (top level)', () => {
  it('are read from the legacy runtime block and the deploy runtime block, and converted to ms', async () => {
    const legacy = await load(
      'runtime:\n  heartbeat_interval_s: 0.5\n  heartbeat_timeout_s: 4\n  readiness_interval_s: 2\n  readiness_failures: 5\nstage_args:\n  - stage_id: 0\n',
    );
    expect(legacy.liveness).toEqual({
      heartbeat_interval_s: 0.5,
      heartbeat_timeout_s: 4,
      readiness_interval_s: 2,
      readiness_failures: 5,
    });
    expect(livenessOptionsOf(legacy.liveness)).toEqual({
      heartbeatMs: 500,
      timeoutMs: 4000,
      readinessMs: 2000,
      readinessFailures: 5,
    });
    const deploy = await load(
      'runtime:\n  heartbeat_timeout_s: 10\nstages:\n  - stage_id: 0\n    engine_input_source: []\n',
    );
    expect(deploy.liveness).toEqual({ heartbeat_timeout_s: 10 });
    const none = await load('stage_args:\n  - stage_id: 0\n');
    expect(none.liveness).toBeUndefined();
  });

  it('a timeout that does not exceed the interval is an error at the timeout, also against the default interval', async () => {
    const err = await rejection(
      load('runtime:\n  heartbeat_interval_s: 5\n  heartbeat_timeout_s: 5\nstage_args:\n  - stage_id: 0\n'),
    );
    expect([err.code, where(err)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:3:24']);
    expect(err.message).toContain('runtime.heartbeat_timeout_s (5 s) must exceed runtime.heartbeat_interval_s (5 s)');
    expect(err.hint).toContain('heartbeat_timeout_s to several intervals');
    const against = await rejection(load('runtime:\n  heartbeat_timeout_s: 1\nstage_args:\n  - stage_id: 0\n'));
    expect([against.code, where(against)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:2:24']);
    expect(against.message).toContain('(2 s, the default)');
  });

  it('refuses out-of-range values, wrong types and unknown keys where they are written', async () => {
    const tooFast = await rejection(load('runtime:\n  heartbeat_interval_s: 0.001\nstage_args:\n  - stage_id: 0\n'));
    expect([tooFast.code, where(tooFast)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:2:25']);
    expect(tooFast.message).toContain('must be ≥ 0.05');
    const failures = await rejection(load('runtime:\n  readiness_failures: 0\nstage_args:\n  - stage_id: 0\n'));
    expect([failures.code, where(failures)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:2:23']);
    const text = await rejection(load('runtime:\n  heartbeat_timeout_s: soon\nstage_args:\n  - stage_id: 0\n'));
    expect([text.code, where(text)]).toEqual(['OMNI_CONFIG_INVALID', 'pipeline.yaml:2:24']);
    const typo = await rejection(
      load('runtime:\n  heartbeat_timout_s: 3\nstages:\n  - stage_id: 0\n    engine_input_source: []\n'),
    );
    expect([typo.code, where(typo)]).toEqual(['OMNI_CONFIG_UNKNOWN_KEY', 'pipeline.yaml:2:3']);
    expect(typo.hint).toMatch(/heartbeat_timeout_s/);
  });
});
