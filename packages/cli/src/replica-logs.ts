import { mkdirSync, openSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OmniError, type BringUpOptions } from '@omnistage/core';
import { checkOutDir } from './output-writer.js';

/**
 * `--replica-logs DIR`: each replica's stdout and stderr lines go to `DIR/stage<S>-replica<R>.log`
 * (a restarted replica appends to its file) instead of the terminal. The directory is checked and
 * created before anything starts; lines are written synchronously, so the last ones before a
 * crash are there.
 */
export function openReplicaLogs(dir: string): NonNullable<BringUpOptions['onReplicaLine']> {
  checkOutDir(dir, '--replica-logs');
  const root = resolve(dir);
  try {
    mkdirSync(root, { recursive: true });
  } catch (err) {
    throw new OmniError('OMNI_USAGE', `--replica-logs ${dir} cannot be created: ${(err as Error).message}`, {
      hint: 'give --replica-logs a writable directory',
    });
  }
  const files = new Map<string, number>();
  // The files stay open until the process ends: a replica may still print while it is stopped.
  return (replica, _stream, line) => {
    const name = `stage${replica.stage_id}-replica${replica.replica_id}.log`;
    let fd = files.get(name);
    if (fd === undefined) {
      fd = openSync(join(root, name), 'a');
      files.set(name, fd);
    }
    writeSync(fd, `${line}\n`);
  };
}
