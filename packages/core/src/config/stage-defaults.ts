import { LocationIndex } from './location-index.js';
import type { RestartPolicy, StageConfig, StageRuntimeConfig } from './types.js';

/** Restart policy of a stage that sets none: never restart. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { policy: 'never', max_restarts: 3, backoff_ms: 500 };

/**
 * A complete {@link StageConfig} from a partial one, with upstream's defaults (`stage_type: llm`,
 * `final_output: false`, `is_comprehension: false`, one replica, inherit devices). Used by the loader
 * and by plugin authors' tests.
 */
export function createStageConfig(
  partial: Partial<Omit<StageConfig, 'runtime'>> & { stage_id: number; runtime?: Partial<StageRuntimeConfig> },
): StageConfig {
  const { runtime, ...rest } = partial;
  return {
    stage_idx: partial.stage_idx ?? 0,
    stage_type: 'llm',
    engine: null,
    engine_args: {},
    engine_input_source: [],
    final_output: false,
    final_output_type: null,
    is_comprehension: false,
    default_sampling_params: {},
    custom_process_input_func: null,
    prompt_expand_func: null,
    cfg_kv_collect_func: null,
    input_connectors: {},
    output_connectors: {},
    extras: {},
    locations: new LocationIndex({ file: '<inline>', line: 1, col: 1 }),
    ...rest,
    runtime: {
      process: true,
      devices: null,
      num_replicas: 1,
      min_ready: 1,
      env: {},
      requires_multimodal_data: false,
      restart: { ...DEFAULT_RESTART_POLICY },
      ...runtime,
    },
  };
}
