/**
 * The worker's side of the handshake: dial the control socket named in the environment, say
 * `hello`, wait for `welcome`. What follows the welcome on the socket is kept for the connection.
 *
 * Imported by the worker SDK: node built-ins and dependency-free protocol modules only.
 */
import { createConnection, type Socket } from 'node:net';
import { OmniError } from '../errors.js';
import { LineDecoder } from '../control/framing.js';
import { CONTROL_ENV, encodeMessage, parseOrchestratorMessage, PHASES_VERSION, PROTOCOL_VERSION, type WelcomeMessage } from '../control/protocol.js';
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
export async function dialOrchestrator(env: Readonly<Record<string, string | undefined>>, timeoutMs: number, phases = false): Promise<Handshaken> {
  const socketPath = required(env, CONTROL_ENV.socket);
  const token = required(env, CONTROL_ENV.token);
  const stage_id = requiredInt(env, CONTROL_ENV.stageId);
  const replica_id = requiredInt(env, CONTROL_ENV.replicaId);
  const socket = dial(socketPath);
  const lines = new SocketLines(socket);
  const ids = { token, stage_id, replica_id, ...(phases ? { phases: PHASES_VERSION } : {}) };
  const welcome = await handshake(socket, lines, ids, timeoutMs);
  return { socket, lines, welcome };
}

/** A Unix socket path, or `tcp://HOST:PORT` for a head on another host (docs/scale-out.md). */
function dial(endpoint: string): Socket {
  const tcp = /^tcp:\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(endpoint);
  if (tcp === null) return createConnection(endpoint);
  const socket = createConnection({ host: tcp[1]!, port: Number(tcp[2]) });
  socket.setNoDelay(true);
  return socket;
}

function handshake(
  socket: Socket,
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
    const timer = setTimeout(() => fail(workerError(`no welcome from the orchestrator within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      lines.setSink(null); // buffer whatever follows the welcome for the connection object
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.once('connect', onConnect);
    socket.on('error', onError);
    socket.once('close', onClose);
    lines.setSink({ line: onLine, error: fail });
  });
}

/** The welcome in the orchestrator's first line; an error for anything else. */
function welcomeOf(line: string): WelcomeMessage {
  const message = parseOrchestratorMessage(line);
  if (message.type === 'error') throw workerError(`the orchestrator rejected this worker: ${message.code}: ${message.message}`);
  if (message.type !== 'welcome') throw workerError(`expected welcome, got "${message.type}"`);
  if (message.v !== PROTOCOL_VERSION) throw workerError(`orchestrator speaks protocol v${message.v}, this worker v${PROTOCOL_VERSION}`);
  return message;
}

function required(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw workerError(`${name} is not set`, 'this program is an omnistage worker: start it through omnistage, which sets the OMNISTAGE_* variables');
  }
  return value;
}

function requiredInt(env: Readonly<Record<string, string | undefined>>, name: string): number {
  const text = required(env, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw workerError(`${name} is not an integer: ${JSON.stringify(text)}`);
  return value;
}
