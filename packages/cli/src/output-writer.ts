import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PipelineOutput } from '@omnistage/core';

/** One final output as `run --json` prints it. */
export interface RunOutputRecord {
  request_id: string;
  stage_id: number;
  replica_id: number;
  type: 'text' | 'image' | 'audio' | 'tensor';
  text?: string;
  path?: string;
}

const EXT: Record<string, string> = { 'image/png': 'png', 'audio/wav': 'wav' };

/**
 * Turns a final stage output into a record: text stays inline; images, audio and tensors are
 * written to `outDir` as `<request>-stage<id>[-<n>].<ext>` (the directory is created on first use).
 */
export function recordOutput(out: PipelineOutput, outDir: string, index: number): RunOutputRecord {
  const base = { request_id: out.request_id, stage_id: out.stage_id, replica_id: out.replica_id };
  const d = (out.data ?? {}) as Record<string, unknown>;
  const kind = d['kind'];
  const write = (ext: string, bytes: Buffer): string => {
    const dir = resolve(outDir);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${out.request_id}-stage${out.stage_id}${index > 0 ? `-${index}` : ''}.${ext}`);
    writeFileSync(file, bytes);
    return file;
  };
  if ((kind === 'image' || kind === 'audio') && typeof d['data_base64'] === 'string') {
    const ext = EXT[String(d['mime'])] ?? (kind === 'image' ? 'png' : 'wav');
    return { ...base, type: kind, path: write(ext, Buffer.from(d['data_base64'], 'base64')) };
  }
  if (typeof d['text'] === 'string') return { ...base, type: 'text', text: d['text'] };
  const tensor = d['tensor'] as Record<string, unknown> | undefined;
  if (tensor && typeof tensor['data_base64'] === 'string') {
    return { ...base, type: 'tensor', path: write('f32', Buffer.from(tensor['data_base64'], 'base64')) };
  }
  return { ...base, type: 'text', text: JSON.stringify(out.data) };
}
