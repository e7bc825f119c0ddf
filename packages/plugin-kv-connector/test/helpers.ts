import { LocationIndex, createStageConfig } from '@omnistage/core/testing';
import type { ConnectorSpec, EdgeConfig, PipelineConfig, SourceLocation, StageConfig } from '@omnistage/core';

export const FILE = '/configs/pipeline.yaml';

let nextLine = 10;

/** A fresh, distinct fake location. */
export function loc(): SourceLocation {
  nextLine += 1;
  return { file: FILE, line: nextLine, col: 5 };
}

/**
 * A StageConfig whose LocationIndex holds a distinct location for every key it declares (connector
 * keys, engine_input_source entries, engine_args paths), so a test can tell which one an error names.
 */
export function stage(
  partial: Partial<Omit<StageConfig, 'runtime' | 'locations'>> & { stage_id: number },
  extraPaths: string[] = [],
): StageConfig {
  const locations = new LocationIndex(loc());
  const paths = [
    ...Object.keys(partial.input_connectors ?? {}).map((k) => `input_connectors.${k}`),
    ...Object.keys(partial.output_connectors ?? {}).map((k) => `output_connectors.${k}`),
    ...(partial.engine_input_source ?? []).map((_, i) => `engine_input_source.${i}`),
    'engine_args',
    ...extraPaths,
  ];
  for (const p of paths) locations.set(p, loc());
  return createStageConfig({ ...partial, locations });
}

export function pipeline(opts: {
  stages: StageConfig[];
  connectors?: Record<string, ConnectorSpec>;
  edges?: EdgeConfig[];
}): PipelineConfig {
  const locations = new LocationIndex({ file: FILE, line: 1, col: 1 });
  const connectors = opts.connectors ?? {};
  if (opts.connectors !== undefined) {
    locations.set('connectors', loc());
    for (const name of Object.keys(connectors)) locations.set(`connectors.${name}`, loc());
  }
  const edges = opts.edges ?? [];
  edges.forEach((_, i) => locations.set(`edges.${i}`, loc()));
  return {
    file: FILE,
    schema: 'legacy',
    model: null,
    pipeline: null,
    pipeline_selected_by: null,
    topology: 'file',
    session_mode: 'turn',
    duplex_session: {},
    async_chunk: false,
    connectors,
    edges,
    stages: opts.stages.map((s, i) => ({ ...s, stage_idx: i })),
    plugins: [],
    warnings: [],
    locations,
  };
}

/** Connectors of the upstream `qwen2_5_omni_multiconnector.yaml` fixture. */
export const QWEN_CONNECTORS: Record<string, ConnectorSpec> = {
  mooncake_connector: {
    name: 'MooncakeStoreConnector',
    extra: {
      host: '127.0.0.1',
      metadata_server: 'http://10.90.67.86:8080/metadata',
      master: '10.90.67.86:50051',
      segment: 512000000,
      localbuf: 64000000,
      proto: 'tcp',
    },
  },
  yuanrong_connector: { name: 'YuanrongConnector', extra: { host: '127.0.0.1', port: '35000' } },
  shared_memory_connector: { name: 'SharedMemoryConnector', extra: { shm_threshold_bytes: 65536 } },
};

/** The topology of `qwen2_5_omni_multiconnector.yaml`: thinker → talker → code2wav over Mooncake. */
export function qwenMulticonnector(): PipelineConfig {
  return pipeline({
    connectors: QWEN_CONNECTORS,
    edges: [
      { from: 0, to: 1 },
      { from: 1, to: 2 },
    ],
    stages: [
      stage({ stage_id: 0, output_connectors: { to_stage_1: 'mooncake_connector' } }),
      stage({
        stage_id: 1,
        engine_input_source: [0],
        input_connectors: { from_stage_0: 'mooncake_connector' },
        output_connectors: { to_stage_2: 'mooncake_connector' },
      }),
      stage({ stage_id: 2, engine_input_source: [1], input_connectors: { from_stage_1: 'mooncake_connector' } }),
    ],
  });
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

/** Deep-freezes a value so that any mutation by the code under test throws in strict mode. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !(value instanceof LocationIndex)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
