/**
 * A replica an agent started with `--advertise ADDR` dials the head's TCP control port from ADDR
 * (OMNISTAGE_HOST_ADDRESS), and the head's resolver is told the connection's remote address: that
 * is how the head knows which host connected. Real worker process, real TCP on 127.0.0.0/8.
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { controlEnv, type HelloMessage } from '../../src/control/protocol.js';
import { ControlServer, type PeerAddress } from '../../src/control/server.js';
import { launchProcess } from '../../src/launch/launch-process.js';
import { cleanupTempDirs, killTracked, requireBuilt, tempDir, trackPid } from '../runtime/helpers.js';
import { PAYLOAD_WORKER } from '../connectors/payload-fixture.js';

beforeAll(() => requireBuilt('worker/handshake.ts', 'control/protocol.ts'));
afterEach(async () => {
  killTracked();
  await cleanupTempDirs();
});

/** Starts a worker that dials `tcp://127.0.0.1:PORT` (from `hostAddress`, if given); resolves with what the head's resolver saw. */
async function dialFrom(
  hostAddress: string | undefined,
): Promise<{ hello: HelloMessage; peer: PeerAddress; exit: number | null }> {
  const server = await ControlServer.listen(join(await tempDir(), 'control.sock'), { run_id: 'host-address' });
  try {
    let seen: { hello: HelloMessage; peer: PeerAddress } | undefined;
    server.resolveUnknownWith(async (hello, peer) => {
      seen = { hello, peer };
      return null; // refused: the worker exits
    });
    const { host, port } = await server.listenTcp({ host: '127.0.0.1', port: 0 });
    const env = controlEnv({
      socketPath: `tcp://${host}:${port}`,
      token: 't'.repeat(43),
      stage_id: 1,
      replica_id: 0,
      run_id: 'host-address',
      ...(hostAddress === undefined ? {} : { hostAddress }),
    });
    const proc = launchProcess({ command: process.execPath, args: [PAYLOAD_WORKER], env: { ...process.env, ...env } });
    trackPid(proc.pid);
    const exit = await proc.exited;
    if (seen === undefined) throw new Error(`the worker never said hello: ${proc.lastLines().join('\n')}`);
    return { ...seen, exit: exit.code };
  } finally {
    await server.close();
  }
}

describe('a remote replica dials from its host address', () => {
  it('with OMNISTAGE_HOST_ADDRESS the head sees that address as the peer', async () => {
    const { hello, peer, exit } = await dialFrom('127.0.0.7');
    expect(hello).toMatchObject({ stage_id: 1, replica_id: 0 });
    expect(peer.address).toBe('127.0.0.7');
    expect(peer.port).toBeGreaterThan(0);
    expect(exit).not.toBe(0); // refused: "unknown token"
  }, 30_000);

  it('without it the OS picks the source address (127.0.0.1 for a loopback head)', async () => {
    const { peer } = await dialFrom(undefined);
    expect(peer.address).toBe('127.0.0.1');
  }, 30_000);
});
