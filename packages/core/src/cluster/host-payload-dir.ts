import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRunPayloadDir, payloadDir, removeRunPayloadDir } from '../connectors/shm-store.js';

/** The file in an agent's payload directory that names its host. */
const HOST_MARK = '.host-id';

/**
 * An agent's private payload directory of a run (its replicas write there, its payload server
 * serves from there), marked with its host id so that the next agent of the same host can reap it.
 */
export function createHostPayloadDir(runId: string, hostId: string, base: string = payloadDir()): string {
  const dir = createRunPayloadDir(runId, base);
  writeFileSync(join(dir, HOST_MARK), hostId, { mode: 0o600, flag: 'wx' });
  return dir;
}

/**
 * Removes the payload directories of the run that an earlier agent of this host left behind (it
 * was killed, so nobody freed them). Other hosts' and the head's directories are never touched:
 * they carry another mark, or none. Returns how many directories went.
 */
export function reapHostPayloadDirs(runId: string, hostId: string, base: string = payloadDir()): number {
  const prefix = `omnistage-${runId}+`;
  let reaped = 0;
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^[0-9a-f]{24}$/.test(name.slice(prefix.length))) continue;
    let mark: string;
    try {
      mark = readFileSync(join(base, name, HOST_MARK), 'utf8');
    } catch {
      continue;
    }
    if (mark !== hostId) continue;
    removeRunPayloadDir(join(base, name));
    reaped++;
  }
  return reaped;
}
