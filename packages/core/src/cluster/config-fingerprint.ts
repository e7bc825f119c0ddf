import { createHash } from 'node:crypto';
import type { PipelineConfig } from '../config/types.js';

/**
 * What head and agents must agree on: each stage's id, type, engine, engine args, inputs and
 * outputs. Devices and env are per host and left out.
 */
export function pipelineFingerprint(config: PipelineConfig): Record<string, unknown> {
  return {
    stages: config.stages.map((s) => ({
      stage_id: s.stage_id,
      stage_type: s.stage_type,
      engine: (s as { engine?: unknown }).engine ?? null,
      engine_args: s.engine_args,
      engine_input_source: s.engine_input_source,
      final_output: s.final_output,
      custom_process_input_func: s.custom_process_input_func ?? null,
    })),
  };
}

/** JSON with sorted keys, so equal fingerprints hash alike. */
function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** sha256 of the fingerprint (what the head publishes as `config_hash`). */
export function fingerprintHash(fingerprint: unknown): string {
  return createHash('sha256').update(stable(fingerprint)).digest('hex');
}

/** The first few places where two fingerprints differ, as `path: head has X, this agent has Y`. */
export function fingerprintDifferences(head: unknown, mine: unknown, path = '', out: string[] = []): string[] {
  if (out.length >= 3) return out;
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
  if (isObj(head) && isObj(mine) && Array.isArray(head) === Array.isArray(mine)) {
    for (const k of [...new Set([...Object.keys(head), ...Object.keys(mine)])].sort()) {
      const label = Array.isArray(head) ? `${path}[${k}]` : path === '' ? k : `${path}.${k}`;
      fingerprintDifferences(head[k], mine[k], label, out);
    }
    return out;
  }
  if (stable(head) !== stable(mine))
    out.push(`${path || '(root)'}: the head has ${stable(head)}, this agent has ${stable(mine)}`);
  return out;
}
