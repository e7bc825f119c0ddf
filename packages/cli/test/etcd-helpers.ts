/**
 * A real, throwaway etcd per test (Debian's etcd-server): free loopback ports, data in a temp dir,
 * stopped and removed by the cleanup registry. Without the binary the scale-out tests fail in CI
 * (`CI` set) and are skipped, saying why, elsewhere.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup, waitFor } from './helpers.js';

/** Whether `etcd` is on the PATH. */
export const HAS_ETCD = spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;

/** Why the scale-out tests cannot run here (null when they can). */
export const ETCD_MISSING = HAS_ETCD
  ? null
  : 'etcd is not installed (apt-get install etcd-server); .ci/run installs it';

/** A free TCP port on 127.0.0.1 (etcd's own port 0 does not work: its gateway dials :0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface TestEtcd {
  url: string;
  stop(): Promise<void>;
}

/** Starts etcd on free loopback ports; retries when a port was taken in between. */
export async function startEtcd(): Promise<TestEtcd> {
  const dir = await mkdtemp(join(tmpdir(), 'omnistage-etcd-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  for (let attempt = 0; attempt < 5; attempt++) {
    const [client, peer] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    const child = spawn(
      'etcd',
      [
        '--name',
        't',
        '--data-dir',
        join(dir, `data${attempt}`),
        '--logger=zap',
        '--log-outputs=stderr',
        '--listen-client-urls',
        url,
        '--advertise-client-urls',
        url,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `t=${peerUrl}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    let exited = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
    child.once('exit', () => (exited = true));
    const stop = async (): Promise<void> => {
      if (exited) return;
      child.kill('SIGTERM');
      await waitFor(() => exited, 5_000);
      if (!exited) child.kill('SIGKILL');
    };
    onCleanup(stop);
    await waitFor(() => log.includes('serving client traffic') || exited, 20_000);
    if (!exited && log.includes('serving client traffic')) return { url, stop };
    await stop();
    if (!log.includes('address already in use')) throw new Error(`etcd did not start:\n${log.slice(-2000)}`);
  }
  throw new Error('etcd did not find free ports in 5 attempts');
}
