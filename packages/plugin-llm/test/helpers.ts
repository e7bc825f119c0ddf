import { LocationIndex, createStageConfig } from '@omnistage/core/testing';
import type { StageConfig } from '@omnistage/core';

export const FILE = '/pipelines/qwen.yaml';

/**
 * A stage config whose `locations` hold the given `[line, col]` per dotted path, as the YAML loader
 * would record them. The stage itself sits at line 3.
 */
export function stageAt(
  partial: Parameters<typeof createStageConfig>[0],
  locations: Record<string, [number, number]> = {},
): StageConfig {
  const index = new LocationIndex({ file: FILE, line: 3, col: 5 });
  for (const [path, [line, col]] of Object.entries(locations)) index.set(path, { file: FILE, line, col });
  return createStageConfig({ ...partial, locations: index });
}

/** Runs `fn` and returns what it threw (fails the test when nothing was thrown). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}
