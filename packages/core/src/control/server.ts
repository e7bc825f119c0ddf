import { chmod, lstat, rm } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { OmniError } from '../errors.js';
import { DEFAULT_MAX_LINE_BYTES, LineDecoder } from './framing.js';
import { encodeMessage, parseWorkerMessage, PROTOCOL_VERSION, type HelloMessage } from './protocol.js';
import { ReplicaChannel, type ExpectOptions } from './replica-channel.js';
import { RejectionLog } from './rejection-log.js';
import { mutualTlsServerOptions, type TlsMaterial } from './tls-material.js';
import { tokenKey } from './token.js';
import { replicaLabel } from '../error-messages.js';

/** What a control server tells every replica (its run). */
export interface ControlServerOptions {
  /** Sent to every replica in `welcome`. */
  run_id: string;
  /** A connection that sends no valid hello within this time is dropped (default 10 s). */
  helloTimeoutMs?: number;
  /** Longest accepted protocol line (default 8 MiB). */
  maxLineBytes?: number;
  /**
   * Bytes a connection may send before its hello is complete (default 4 KiB): unauthenticated
   * peers must not be able to make the orchestrator buffer megabytes each.
   */
  maxHelloBytes?: number;
  /** Where rejected connections are reported (at warn level); default: nowhere. */
  warn?: (message: string) => void;
  /** At most one rejection line per this many ms; the rest are counted (default 1 s). */
  rejectLogIntervalMs?: number;
}

/**
 * Asked about a hello whose token was never announced (a replica started by an agent on another
 * host): returns the channel to bind it to, or null to refuse it ("unknown token").
 */
export type UnknownTokenResolver = (hello: HelloMessage, peer: PeerAddress) => Promise<ReplicaChannel | null>;

/** The far end of a control connection (`address` is empty for a Unix socket). */
export interface PeerAddress {
  address: string;
  port: number;
}

/** Where a TCP control listener accepts replicas of other hosts. */
export interface TcpEndpoint {
  host: string;
  port: number;
}

/** A hello is a few hundred bytes; anything past this before it is not a replica. */
export const DEFAULT_MAX_HELLO_BYTES = 4 * 1024;

// sockaddr_un.sun_path is 108 bytes including the terminating NUL on Linux.
const MAX_SOCKET_PATH = 107;
const END_GRACE_MS = 1_000;

/**
 * The orchestrator's control endpoint: a Unix socket speaking docs/protocol.md. Each replica
 * is announced with {@link ControlServer.expect} (token + ids) before it is spawned; a
 * connection is bound to its channel only after a valid hello. Unknown tokens, a reused token,
 * mismatched ids or another protocol version are answered with an `error` message and closed.
 */
export class ControlServer {
  readonly socketPath: string;
  readonly #server: Server;
  readonly #options: Required<Omit<ControlServerOptions, 'warn'>>;
  #resolveUnknown: UnknownTokenResolver | undefined;
  readonly #tcpServers: Server[] = [];
  readonly #rejections: RejectionLog;
  readonly #expected = new Map<string, ReplicaChannel>();
  readonly #sockets = new Set<Socket>();
  #closing: Promise<void> | undefined;

  private constructor(
    socketPath: string,
    server: Server,
    options: Required<Omit<ControlServerOptions, 'warn'>>,
    warn?: (message: string) => void,
  ) {
    this.socketPath = socketPath;
    this.#server = server;
    this.#options = options;
    this.#rejections = new RejectionLog(warn ?? (() => undefined), options.rejectLogIntervalMs);
    server.on('connection', (socket) => this.#onConnection(socket));
  }

  /**
   * Listens on `socketPath` (mode 0600). A leftover socket file nobody listens on is replaced;
   * a live one or any other file there is an error.
   */
  static async listen(socketPath: string, options: ControlServerOptions): Promise<ControlServer> {
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new OmniError(
        'OMNI_ENVIRONMENT',
        `control socket path is too long (${Buffer.byteLength(socketPath)} > ${MAX_SOCKET_PATH} bytes): ${socketPath}`,
        {
          hint: 'Unix socket paths are limited to 107 bytes; set TMPDIR to a shorter directory (run directories are made there)',
        },
      );
    }
    await removeDeadSocket(socketPath);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // The token is the real authentication; 0600 just keeps other users from even trying.
    await chmod(socketPath, 0o600).catch(() => undefined);
    const { warn, ...rest } = options;
    const settings = {
      helloTimeoutMs: 10_000,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      maxHelloBytes: DEFAULT_MAX_HELLO_BYTES,
      rejectLogIntervalMs: 1_000,
      ...rest,
    };
    return new ControlServer(socketPath, server, settings, warn);
  }

  /** Head mode: hellos with tokens nobody announced are checked by `resolver` instead of refused at once. */
  resolveUnknownWith(resolver: UnknownTokenResolver): void {
    this.#resolveUnknown = resolver;
  }

  /**
   * Also accepts replicas over TCP (head mode: replicas of other hosts dial in). Same protocol,
   * same token check; resolves with the bound address (port 0 picks a free one). With `tls` the
   * port speaks only mutual TLS (≥ 1.2): a peer without a certificate signed by `tls.ca` never
   * gets to say hello, and is logged as a rejected connection.
   */
  async listenTcp(endpoint: TcpEndpoint, tls?: TlsMaterial): Promise<TcpEndpoint> {
    const server = tls === undefined ? createServer() : this.#tlsServer(tls);
    server.on(tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
      socket.setNoDelay(true);
      this.#onConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(endpoint.port, endpoint.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#tcpServers.push(server);
    const address = server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  #tlsServer(tls: TlsMaterial): TlsServer {
    const server = createTlsServer(mutualTlsServerOptions(tls, this.#options.helloTimeoutMs));
    // A peer still in its handshake is not bound to anything yet, but close() must not wait for it.
    server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.once('close', () => this.#sockets.delete(raw));
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      if (this.#closing === undefined)
        this.#rejections.rejected(
          `TLS handshake failed: ${err.code ?? err.message} (from ${socket.remoteAddress ?? 'an unknown address'})`,
        );
      socket.destroy();
    });
    return server;
  }

  /** Announces a replica: the first connection presenting `token` with these ids gets the channel. */
  expect(token: string, opts: ExpectOptions): ReplicaChannel {
    if (this.#closing !== undefined) {
      throw new OmniError('OMNI_CANCELLED', 'the control server is closed', { hint: 'the run is shutting down' });
    }
    const key = tokenKey(token);
    if (this.#expected.has(key)) {
      throw new OmniError('OMNI_INTERNAL', `a control token was registered twice (${replicaLabel(opts)})`, {
        context: { stage_id: opts.stage_id, replica_id: opts.replica_id },
        hint: 'create one token per replica launch with createControlToken()',
      });
    }
    const channel = new ReplicaChannel(this.#options.run_id, opts);
    this.#expected.set(key, channel);
    return channel;
  }

  /** Closes every channel and connection, stops listening and removes the socket file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const channel of this.#expected.values()) channel.close();
      for (const socket of this.#sockets) socket.destroy();
      await Promise.all(
        [this.#server, ...this.#tcpServers].map(
          (server) => new Promise<void>((resolve) => server.close(() => resolve())),
        ),
      );
      await rm(this.socketPath, { force: true });
      this.#rejections.flush();
    })();
    return this.#closing;
  }

  #onConnection(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined); // resets by dying workers are reported through 'close'

    const decoder = new LineDecoder(this.#options.maxLineBytes);
    let channel: ReplicaChannel | null = null;
    // Lines that arrive while an unknown token is being resolved wait for the answer.
    let resolving: string[] | null = null;
    const helloTimer = setTimeout(
      () => this.#reject(socket, 'OMNI_PROTOCOL', 'no hello received in time'),
      this.#options.helloTimeoutMs,
    );
    helloTimer.unref();
    socket.once('close', () => clearTimeout(helloTimer));

    socket.on('data', (chunk: Buffer) => {
      // A rejected peer may keep sending until the grace period ends: none of it is read.
      if (socket.destroyed || socket.writableEnded) return;
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (err) {
        const e = err as OmniError;
        if (channel !== null) channel.fail(e);
        else this.#reject(socket, e.code, e.message);
        return;
      }
      for (const [i, line] of lines.entries()) {
        if (socket.destroyed || socket.writableEnded) return;
        if (resolving !== null) {
          resolving.push(line);
          continue;
        }
        if (channel !== null) {
          channel.receive(line);
          continue;
        }
        clearTimeout(helloTimer);
        const bound = this.#onHello(socket, line);
        if (bound instanceof Promise) {
          const queued: string[] = (resolving = lines.slice(i + 1));
          void bound.then((c) => {
            channel = c;
            resolving = null;
            for (const rest of queued) if (c !== null && !socket.destroyed) c.receive(rest);
          });
          return;
        }
        channel = bound;
        if (channel === null) return;
      }
      if (channel === null && resolving === null && decoder.pending > this.#options.maxHelloBytes) {
        clearTimeout(helloTimer);
        this.#reject(socket, 'OMNI_PROTOCOL', `more than ${this.#options.maxHelloBytes} bytes before its hello`);
      }
    });
  }

  /** Binds the connection to its channel, or rejects it (asynchronously when an unknown token must be resolved). */
  #onHello(socket: Socket, line: string): ReplicaChannel | null | Promise<ReplicaChannel | null> {
    let hello: HelloMessage;
    try {
      const message = parseWorkerMessage(line);
      if (message.type !== 'hello') {
        this.#reject(socket, 'OMNI_PROTOCOL', `expected hello, got "${message.type}"`);
        return null;
      }
      hello = message;
    } catch (err) {
      this.#reject(socket, 'OMNI_PROTOCOL', (err as Error).message);
      return null;
    }
    const channel = this.#expected.get(tokenKey(hello.token));
    if (channel === undefined) {
      if (this.#resolveUnknown !== undefined) return this.#resolveHello(socket, hello);
      // Say nothing about which tokens exist.
      this.#reject(socket, 'OMNI_PROTOCOL', 'unknown token');
      return null;
    }
    return this.#bind(socket, hello, channel);
  }

  /** Asks the resolver about an unannounced token; a channel it returns is expected from now on. */
  async #resolveHello(socket: Socket, hello: HelloMessage): Promise<ReplicaChannel | null> {
    let channel: ReplicaChannel | null = null;
    try {
      channel =
        (await this.#resolveUnknown?.(hello, { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 })) ??
        null;
    } catch (err) {
      this.#reject(socket, 'OMNI_PROTOCOL', `the token could not be checked: ${(err as Error).message}`);
      return null;
    }
    if (channel === null || socket.destroyed || this.#closing !== undefined) {
      channel?.close();
      this.#reject(socket, 'OMNI_PROTOCOL', 'unknown token');
      return null;
    }
    this.#expected.set(tokenKey(hello.token), channel);
    return this.#bind(socket, hello, channel);
  }

  /** Creates a channel the server did not announce itself (a resolver's answer); register it by returning it. */
  channelFor(opts: ExpectOptions): ReplicaChannel {
    return new ReplicaChannel(this.#options.run_id, opts);
  }

  #bind(socket: Socket, hello: HelloMessage, channel: ReplicaChannel): ReplicaChannel | null {
    if (!channel.waiting) {
      this.#reject(socket, 'OMNI_PROTOCOL', 'this token was already used or its replica is no longer expected');
      return null;
    }
    const problem =
      hello.v !== PROTOCOL_VERSION
        ? `protocol version ${hello.v} is not supported (this orchestrator speaks v${PROTOCOL_VERSION})`
        : hello.stage_id !== channel.stage_id || hello.replica_id !== channel.replica_id
          ? `hello says ${replicaLabel(hello)}, but this token belongs to ${replicaLabel(channel)}`
          : null;
    if (problem !== null) {
      this.#reject(socket, 'OMNI_PROTOCOL', problem);
      // The token is right, so this is our replica misbehaving: fail its attach now rather than
      // letting it run into the init deadline.
      channel.fail(
        new OmniError('OMNI_PROTOCOL', problem, {
          context: { pid: hello.pid },
          hint: 'the replica was started with the wrong OMNISTAGE_* environment or an incompatible worker SDK',
        }),
      );
      return null;
    }
    channel.attach(socket, hello);
    return channel;
  }

  /** Rejects a connection that is not bound to a channel, and says so (rate-limited). */
  #reject(socket: Socket, code: string, message: string): void {
    if (socket.destroyed || socket.writableEnded) return;
    this.#rejections.rejected(message);
    reject(socket, code, message);
  }
}

/** Sends an `error` line and closes a connection that is not bound to a channel. */
function reject(socket: Socket, code: string, message: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(encodeMessage({ type: 'error', code, message }));
  setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
}

/** Removes a socket file left by a dead orchestrator; refuses live sockets and other files. */
async function removeDeadSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch {
    return; // nothing there
  }
  const hint = 'each run needs its own control socket; use a fresh run directory';
  if (!isSocket) throw new OmniError('OMNI_ENVIRONMENT', `${path} exists and is not a socket`, { hint });
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new OmniError('OMNI_ENVIRONMENT', `another process is listening on ${path}`, { hint });
  await rm(path, { force: true });
}
