/**
 * The worker's side of the handshake: dial the control socket named in the environment, say
 * `hello`, wait for `welcome`. What follows the welcome on the socket is kept for the connection.
 *
 * Imported by the worker SDK: node built-ins and dependency-free protocol modules only.
 */
import { readFileSync } from 'node:fs';
import { createConnection, isIP, type Socket } from 'node:net';
import { OmniError } from '../errors.js';
import { LineDecoder } from '../control/framing.js';
import {
  CONTROL_ENV,
  encodeMessage,
  parseOrchestratorMessage,
  PHASES_VERSION,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from '../control/protocol.js';
import { workerError } from './worker-error.js';

type LineSink = { line(line: string): void; error(err: OmniError): void };

/**
 * The one 'data' listener of the control socket. Lines go to the current sink; while there is
 * none (between the welcome and the connection object taking over) they are buffered, so a
 * request pipelined right after the welcome is not lost.
 */
export class SocketLines {
  readonly #decoder = new LineDecoder();
  readonly #buffered: string[] = [];
  #sink: LineSink | null = null;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = this.#decoder.push(chunk);
      } catch (err) {
        this.#sink?.error(err as OmniError);
        return;
      }
      this.#buffered.push(...lines);
      this.#drain();
    });
  }

  setSink(sink: LineSink | null): void {
    this.#sink = sink;
    this.#drain();
  }

  #drain(): void {
    // Re-check the sink each time: a sink may hand over (set another, or null) mid-batch.
    for (let sink = this.#sink; sink !== null && this.#buffered.length > 0; sink = this.#sink) {
      sink.line(this.#buffered.shift() as string);
    }
  }
}

/** An attached socket, its line reader and the welcome it got. */
export interface Handshaken {
  readonly socket: Socket;
  readonly lines: SocketLines;
  readonly welcome: WelcomeMessage;
}

/** Dials the orchestrator named by OMNISTAGE_* in `env` and completes the handshake. */
export async function dialOrchestrator(
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs: number,
  phases = false,
): Promise<Handshaken> {
  const socketPath = required(env, CONTROL_ENV.socket);
  const token = required(env, CONTROL_ENV.token);
  const stage_id = requiredInt(env, CONTROL_ENV.stageId);
  const replica_id = requiredInt(env, CONTROL_ENV.replicaId);
  const { socket, connectEvent } = await dial(socketPath, env);
  const lines = new SocketLines(socket);
  const ids = { token, stage_id, replica_id, ...(phases ? { phases: PHASES_VERSION } : {}) };
  const welcome = await handshake(socket, connectEvent, lines, ids, timeoutMs);
  return { socket, lines, welcome };
}

/**
 * A Unix socket path, or `tcp://HOST:PORT` for a head on another host (docs/scale-out.md); with
 * OMNISTAGE_TLS_* set, that TCP connection is mutual TLS. node:tls is loaded only then: worker
 * start-up time is benchmarked.
 */
async function dial(
  endpoint: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ socket: Socket; connectEvent: 'connect' | 'secureConnect' }> {
  const tcp = /^tcp:\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(endpoint);
  if (tcp === null) return { socket: createConnection(endpoint), connectEvent: 'connect' };
  const host = tcp[1]!;
  const port = Number(tcp[2]);
  // The connection leaves from the host's address when the agent gave one, so the head sees which host dialled.
  const hostAddress = env[CONTROL_ENV.hostAddress];
  const local = hostAddress !== undefined && isIP(hostAddress) !== 0 ? { localAddress: hostAddress } : {};
  const files = tlsFilesOf(env);
  if (files === null) {
    const socket = createConnection({ host, port, ...local });
    socket.setNoDelay(true);
    return { socket, connectEvent: 'connect' };
  }
  const { connect } = await import('node:tls');
  // An IP is checked against the certificate's IP names; RFC 6066 forbids it as a server name.
  const socket = connect({
    host,
    port,
    ...local,
    ...files,
    minVersion: 'TLSv1.2',
    ...(isIP(host) === 0 ? { servername: host } : {}),
  });
  socket.setNoDelay(true);
  return { socket, connectEvent: 'secureConnect' };
}

/** The TLS files named in the environment, read; null when none is set. Half a set is an error. */
function tlsFilesOf(
  env: Readonly<Record<string, string | undefined>>,
): { cert: Buffer; key: Buffer; ca: Buffer } | null {
  const names = { cert: CONTROL_ENV.tlsCert, key: CONTROL_ENV.tlsKey, ca: CONTROL_ENV.tlsCa };
  const set = Object.values(names).filter((name) => (env[name] ?? '') !== '');
  if (set.length === 0) return null;
  if (set.length < 3)
    throw workerError(
      `${Object.values(names).join(', ')} go together; only ${set.join(', ')} is set`,
      'the agent sets all three from its --tls-cert, --tls-key and --tls-ca',
    );
  const read = (name: string): Buffer => {
    const file = env[name]!;
    try {
      return readFileSync(file);
    } catch (err) {
      throw workerError(
        `cannot read ${name}=${file}: ${(err as Error).message}`,
        'the agent passes the paths of its --tls-cert, --tls-key and --tls-ca files; check they exist on this host',
      );
    }
  };
  return { cert: read(names.cert), key: read(names.key), ca: read(names.ca) };
}

function handshake(
  socket: Socket,
  connectEvent: 'connect' | 'secureConnect',
  lines: SocketLines,
  ids: { token: string; stage_id: number; replica_id: number; phases?: number },
  timeoutMs: number,
): Promise<WelcomeMessage> {
  return new Promise((resolve, reject) => {
    const fail = (err: OmniError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      socket.write(encodeMessage({ type: 'hello', v: PROTOCOL_VERSION, ...ids, pid: process.pid }));
    };
    const onError = (err: Error): void => fail(workerError(`cannot reach the orchestrator: ${err.message}`));
    const onClose = (): void => fail(workerError('the orchestrator closed the connection during the handshake'));
    const onLine = (line: string): void => {
      try {
        const welcome = welcomeOf(line);
        cleanup();
        resolve(welcome);
      } catch (err) {
        fail(err instanceof OmniError ? err : workerError(String(err)));
      }
    };
    const timer = setTimeout(
      () => fail(workerError(`no welcome from the orchestrator within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      lines.setSink(null); // buffer whatever follows the welcome for the connection object
      socket.off(connectEvent, onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.once(connectEvent, onConnect);
    socket.on('error', onError);
    socket.once('close', onClose);
    lines.setSink({ line: onLine, error: fail });
  });
}

/** The welcome in the orchestrator's first line; an error for anything else. */
function welcomeOf(line: string): WelcomeMessage {
  const message = parseOrchestratorMessage(line);
  if (message.type === 'error')
    throw workerError(`the orchestrator rejected this worker: ${message.code}: ${message.message}`);
  if (message.type !== 'welcome') throw workerError(`expected welcome, got "${message.type}"`);
  if (message.v !== PROTOCOL_VERSION)
    throw workerError(`orchestrator speaks protocol v${message.v}, this worker v${PROTOCOL_VERSION}`);
  return message;
}

function required(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw workerError(
      `${name} is not set`,
      'this program is an omnistage worker: start it through omnistage, which sets the OMNISTAGE_* variables',
    );
  }
  return value;
}

function requiredInt(env: Readonly<Record<string, string | undefined>>, name: string): number {
  const text = required(env, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw workerError(`${name} is not an integer: ${JSON.stringify(text)}`);
  return value;
}
