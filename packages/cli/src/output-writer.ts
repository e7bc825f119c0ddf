import { accessSync, constants, mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { OmniError, type PipelineOutput } from '@omnistage/core';

/**
 * `--out DIR` checked before anything starts (bring-up can take minutes): it must be a writable
 * directory or creatable as one. Missing levels are created one at a time and removed again —
 * a recursive mkdir under /proc loops forever instead of failing.
 */
export function checkOutDir(outDir: string, option = '--out'): void {
  const dir = resolve(outDir);
  const fail = (why: string): never => {
    throw new OmniError('OMNI_USAGE', `${option} ${outDir} cannot hold the outputs: ${why}`, {
      hint: `give ${option} a writable directory, or a path where one can be created`,
    });
  };
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    const st = statSync(at, { throwIfNoEntry: false });
    if (st) {
      if (!st.isDirectory()) fail(at === dir ? `${at} is a file` : `${at} is a file, not a directory`);
      break;
    }
    missing.unshift(at);
    if (dirname(at) === at) break;
    at = dirname(at);
  }
  try {
    if (missing.length === 0) accessSync(dir, constants.W_OK);
    for (const m of missing) mkdirSync(m);
  } catch (err) {
    fail((err as Error).message);
  } finally {
    for (const m of [...missing].reverse()) {
      try {
        rmdirSync(m);
      } catch {
        // Not created (the mkdir above failed first): nothing to remove.
      }
    }
  }
}

/** One final output as `run --json` prints it. */
export interface RunOutputRecord {
  request_id: string;
  stage_id: number;
  replica_id: number;
  type: 'text' | 'image' | 'audio' | 'tensor';
  text?: string;
  path?: string;
  /** Set when a reference engine (a stand-in, not a model) produced it. */
  reference_engine?: true;
}

const EXT: Record<string, string> = { 'image/png': 'png', 'audio/wav': 'wav' };

/**
 * Turns a final stage output into a record: text stays inline; images, audio and tensors are
 * written to `outDir` as `<request>-stage<id>[-<n>].<ext>` (the directory is created on first use).
 */
export function recordOutput(out: PipelineOutput, outDir: string, index: number): RunOutputRecord {
  const d = (out.data ?? {}) as Record<string, unknown>;
  const base = {
    request_id: out.request_id,
    stage_id: out.stage_id,
    replica_id: out.replica_id,
    ...(d['reference_engine'] === true ? { reference_engine: true as const } : {}),
  };
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
