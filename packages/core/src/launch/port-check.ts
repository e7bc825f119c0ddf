import { createServer } from 'node:net';
import { OmniError, type ErrorContext } from '../errors.js';
import { replicaLabel } from '../error-messages.js';

/** How long a taken port may take to come free before it counts as another program's. */
export const PORT_GRACE_MS = 2_000;

/**
 * Fails when a TCP port a replica is about to bind is already taken on this host. Without this an
 * HTTP engine whose port belongs to another server (a vLLM left over from another session, another
 * user's service) is "ready" as soon as that server answers, and requests go to the wrong model,
 * while the real replica dies on EADDRINUSE minutes later, after loading its weights.
 *
 * Probing binds the wildcard address, which conflicts with a listener on any address of the port.
 * A port someone takes between this check and the engine's bind is not this check's business (the
 * engine then fails on its own, with its last lines shown).
 */
export async function ensurePortFree(
  port: number,
  context: ErrorContext & { stage_id: number; replica_id: number },
  graceMs = PORT_GRACE_MS,
): Promise<void> {
  // A restarted replica's predecessor (its process group being torn down) may hold the port for a
  // moment longer: only a port still taken after the grace is someone else's.
  const deadline = Date.now() + graceMs;
  let taken = await portTaken(port);
  while (taken !== null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    taken = await portTaken(port);
  }
  if (taken === null) return;
  throw new OmniError(
    'OMNI_PORT_IN_USE',
    `${replicaLabel(context)}: port ${port} is already in use on this host (${taken})`,
    {
      context: { ...context, port },
      hint: `stop whatever listens on ${port} (\`ss -ltnp 'sport = :${port}'\` shows it), or give the stage another port (engine_args.port)`,
    },
  );
}

/** The bind error when `port` cannot be bound on the wildcard address, null when it is free. */
function portTaken(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => {
      // Only a port someone holds counts; other errors (no IPv4, privileged port) are the engine's to report.
      resolve(err.code === 'EADDRINUSE' ? err.code : null);
    });
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(null)));
  });
}
