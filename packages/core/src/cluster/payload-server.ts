import { closeSync, createReadStream } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { PAYLOAD_HEADER_MAX_BYTES, PAYLOAD_WIRE_VERSION } from '../connectors/payload-fetch.js';
import { isValidPayloadKey } from '../connectors/payload-ref.js';
import { deletePayloadAsync, openPayloadToSend } from '../connectors/shm-store.js';
import { mutualTlsServerOptions, type TlsMaterial } from '../control/tls-material.js';
import { derivePayloadToken, tokensMatch } from './cluster-token.js';

/** Where and what a host's payload server serves. */
export interface PayloadServerOptions {
  runId: string;
  /** This host's payload directory of the run (its replicas write there). */
  dir: string;
  secret: Buffer;
  host: string;
  /** 0: any free port. */
  port: number;
  tls?: TlsMaterial;
  /** A peer that has not sent its request line within this time is dropped (default 10 s). */
  requestTimeoutMs?: number;
  /** Told about each refused request (wrong token, stale key, ...). */
  warn(message: string): void;
}

/** Chunks read from the payload file while the socket drains: memory per transfer stays this small. */
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * A host's payload server (docs/protocol.md, "Payload fetch"): serves the payload files of its run
 * by key to consumers on other hosts, streamed from shared memory (never whole in memory), and
 * frees them when the head says so. Every request carries the run's fetch (or release) token;
 * with TLS, a peer without a certificate of the cluster's CA never gets to send one.
 */
export class PayloadServer {
  readonly #o: PayloadServerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #fetchToken: string;
  readonly #releaseToken: string;
  /** `tcp://HOST:PORT` once listening. */
  url = '';

  private constructor(options: PayloadServerOptions) {
    this.#o = options;
    this.#fetchToken = derivePayloadToken(options.secret, options.runId, 'fetch');
    this.#releaseToken = derivePayloadToken(options.secret, options.runId, 'release');
    const tls = options.tls;
    this.#server =
      tls === undefined
        ? createServer()
        : createTlsServer(mutualTlsServerOptions(tls, options.requestTimeoutMs ?? 10_000));
    this.#server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.once('close', () => this.#sockets.delete(raw));
    });
    this.#server.on(tls === undefined ? 'connection' : 'secureConnection', (s: Socket) => this.#serve(s));
    this.#server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      options.warn(`refused a payload connection: TLS handshake failed: ${err.code ?? err.message}`);
      socket.destroy();
    });
  }

  /** Listens on `host:port` and resolves once bound (`url` says where). */
  static async start(options: PayloadServerOptions, advertise?: string): Promise<PayloadServer> {
    const server = new PayloadServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(options.port, options.host, () => {
        server.#server.off('error', reject);
        resolve();
      });
    });
    const bound = server.#server.address() as AddressInfo;
    const host = advertise ?? bound.address;
    server.url = `tcp://${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
    return server;
  }

  #serve(socket: Socket): void {
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(), this.#o.requestTimeoutMs ?? 10_000);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl === -1 && head.byteLength <= PAYLOAD_HEADER_MAX_BYTES) return;
      socket.off('data', onData);
      clearTimeout(timer);
      if (nl === -1 || nl > PAYLOAD_HEADER_MAX_BYTES) return this.#refuse(socket, 'the request line is too long');
      let request: Record<string, unknown>;
      try {
        request = JSON.parse(head.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
      } catch {
        return this.#refuse(socket, 'the request is not JSON');
      }
      void this.#answer(socket, typeof request === 'object' && request !== null ? request : {});
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  }

  async #answer(socket: Socket, r: Record<string, unknown>): Promise<void> {
    const from = socket.remoteAddress ?? 'an unknown address';
    const token = typeof r['token'] === 'string' ? r['token'] : '';
    const key = r['key'];
    if (r['v'] !== PAYLOAD_WIRE_VERSION) return this.#refuse(socket, `unsupported version ${String(r['v'])}`, from);
    if (r['run'] !== this.#o.runId) return this.#refuse(socket, `not a payload of run ${this.#o.runId}`, from);
    if (!isValidPayloadKey(key)) return this.#refuse(socket, 'the key is not a payload key', from);
    if (r['op'] === 'release') {
      if (!tokensMatch(token, this.#releaseToken)) return this.#refuse(socket, 'wrong token', from);
      await deletePayloadAsync(this.#o.runId, key, this.#o.dir);
      socket.end(`${JSON.stringify({ ok: true })}\n`);
      return;
    }
    if (r['op'] !== 'get') return this.#refuse(socket, `unknown op ${JSON.stringify(r['op'])}`, from);
    if (!tokensMatch(token, this.#fetchToken)) return this.#refuse(socket, 'wrong token', from);
    const size = r['size'];
    const segmentBytes = r['segment_bytes'];
    if (!Number.isSafeInteger(size)) return this.#refuse(socket, 'the request has no size', from);
    let opened: { fd: number; size: number };
    try {
      opened = openPayloadToSend(this.#o.runId, key, {
        dir: this.#o.dir,
        size: size as number,
        ...(Number.isSafeInteger(segmentBytes) ? { segmentBytes: segmentBytes as number } : {}),
      });
    } catch (err) {
      return this.#refuse(socket, (err as Error).message, from);
    }
    socket.write(`${JSON.stringify({ ok: true, size: opened.size })}\n`);
    if (opened.size === 0) {
      closeSync(opened.fd);
      socket.end();
      return;
    }
    // pipe() waits for the socket to drain: at most a chunk or two of the payload is in memory here.
    const stream = createReadStream('', {
      fd: opened.fd,
      start: 0,
      end: opened.size - 1,
      highWaterMark: READ_CHUNK_BYTES,
      autoClose: true,
    });
    stream.on('error', () => socket.destroy());
    socket.once('close', () => stream.destroy());
    stream.pipe(socket);
  }

  #refuse(socket: Socket, why: string, from?: string): void {
    this.#o.warn(`refused a payload request${from === undefined ? '' : ` from ${from}`}: ${why}`);
    socket.end(`${JSON.stringify({ ok: false, error: why })}\n`);
  }

  /** Stops listening and drops every connection (transfers in progress fail on the consumer's side). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
