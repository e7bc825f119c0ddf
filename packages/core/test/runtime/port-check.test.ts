import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isOmniError } from '../../src/errors.js';
import { ensurePortFree } from '../../src/launch/port-check.js';

/** A listener on 127.0.0.1 at an ephemeral port. */
function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}
const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('ensurePortFree', () => {
  it('passes a free port and refuses one another program keeps, naming stage, replica and port', async () => {
    const { server, port } = await listen();
    await close(server);
    await expect(ensurePortFree(port, { stage_id: 0, replica_id: 0 }, 0)).resolves.toBeUndefined();

    const held = await listen();
    try {
      const err = await ensurePortFree(held.port, { stage_id: 2, replica_id: 1, phase: 'spawn' }, 300).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isOmniError(err) && err.code).toBe('OMNI_PORT_IN_USE');
      expect((err as Error).message).toBe(
        `stage 2 replica 1: port ${held.port} is already in use on this host (EADDRINUSE)`,
      );
      expect(isOmniError(err) && err.context).toMatchObject({
        stage_id: 2,
        replica_id: 1,
        phase: 'spawn',
        port: held.port,
      });
    } finally {
      await close(held.server);
    }
  });

  it("waits out a predecessor that lets the port go within the grace (a restart after the old group's teardown)", async () => {
    const { server, port } = await listen();
    setTimeout(() => void close(server), 200);
    await expect(ensurePortFree(port, { stage_id: 0, replica_id: 0 }, 5_000)).resolves.toBeUndefined();
  });
});
