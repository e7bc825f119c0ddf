/**
 * The direct data plane between hosts (docs/protocol.md, "Payload fetch"): a consumer whose
 * payload was stored in shared memory on another host fetches it over TCP (mutual TLS where the
 * cluster has it) from that host's payload server, straight into one Buffer of the announced size.
 * The head's release of a remote payload goes the same way. One request per connection:
 *
 *   client → `{"v":1,"op":"get"|"release","run":…,"key":…,"size":…,"segment_bytes"?:…,"token":…}\n`
 *   server → `{"ok":true,"size":N}\n` then exactly N bytes (get), `{"ok":true}\n` (release),
 *            or `{"ok":false,"error":"…"}\n` and close.
 *
 * Imported by the worker SDK: node built-ins only.
 */
import { readFileSync } from 'node:fs';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { OmniError } from '../errors.js';
import type { PayloadOrigin, PayloadRef } from './payload-ref.js';

/** Version of the payload fetch wire. */
export const PAYLOAD_WIRE_VERSION = 1;
/** Longest request or reply header line. */
export const PAYLOAD_HEADER_MAX_BYTES = 4096;
/** Default of `max_bytes`: the largest payload a consumer fetches (Node's Buffers go up to 4 GiB). */
export const DEFAULT_MAX_FETCH_BYTES = 2 * 1024 * 1024 * 1024;
/** Default deadline of one fetch, connect to last byte. */
export const DEFAULT_FETCH_TIMEOUT_MS = 120_000;

/** The PEM files of mutual TLS (paths: read when a connection is made). */
export interface PayloadTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/**
 * What a replica (or the head) needs to take part in the data plane, sent in `welcome` as
 * `payload_plane`: its own host and payload server (stamped into the references it stores), the
 * run's fetch token, the largest payload it may fetch and how long a fetch may take.
 */
export interface PayloadPlane extends PayloadOrigin {
  token: string;
  max_bytes: number;
  timeout_ms: number;
  /** Mutual TLS: the files to present (absent while `tls` is true: the replica's OMNISTAGE_TLS_* env). */
  tls?: boolean;
  tls_files?: PayloadTlsFiles;
}

/** What one fetch or release dials with. */
export interface FetchAccess {
  run_id: string;
  token: string;
  max_bytes: number;
  timeout_ms: number;
  /** PEM contents; absent: plain TCP. */
  tls?: { cert: Buffer; key: Buffer; ca: Buffer };
  /** Dial from this address (a replica: its host's `OMNISTAGE_HOST_ADDRESS`, as for the control connection). */
  local_address?: string;
}

/** The origin of a reference, when it carries one. */
export function originOf(ref: PayloadRef): PayloadOrigin | undefined {
  const o: unknown = ref.origin;
  if (typeof o !== 'object' || o === null) return undefined;
  const { host_id, url } = o as Record<string, unknown>;
  return typeof host_id === 'string' && typeof url === 'string' ? { host_id, url } : undefined;
}

/** A well-formed plane from a welcome, or undefined. */
export function planeOf(value: unknown): PayloadPlane | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const p = value as Record<string, unknown>;
  const ok =
    typeof p['host_id'] === 'string' &&
    typeof p['url'] === 'string' &&
    typeof p['token'] === 'string' &&
    Number.isSafeInteger(p['max_bytes']) &&
    Number.isSafeInteger(p['timeout_ms']);
  return ok ? (value as PayloadPlane) : undefined;
}

/** The TLS material of a replica's plane: the welcome's files, else the agent's OMNISTAGE_TLS_* env. */
export function planeTls(
  plane: PayloadPlane,
  env: Readonly<Record<string, string | undefined>>,
): FetchAccess['tls'] | undefined {
  if (plane.tls !== true) return undefined;
  const files = plane.tls_files ?? {
    cert: env['OMNISTAGE_TLS_CERT'] ?? '',
    key: env['OMNISTAGE_TLS_KEY'] ?? '',
    ca: env['OMNISTAGE_TLS_CA'] ?? '',
  };
  try {
    return { cert: readFileSync(files.cert), key: readFileSync(files.key), ca: readFileSync(files.ca) };
  } catch (err) {
    throw fetchError(
      `the data plane uses mutual TLS and this replica cannot read its files: ${(err as Error).message}`,
    );
  }
}

/** A payload error of the data plane (`OMNI_PAYLOAD_FETCH`). */
export function fetchError(message: string, cause?: unknown): OmniError {
  return new OmniError('OMNI_PAYLOAD_FETCH', message, {
    cause,
    hint: 'see docs/scale-out.md, "Payloads across hosts": the producing host must be up and serve its payloads, with the same cluster secret (and TLS files) as the head',
  });
}

/**
 * Fetches a payload from its origin host into one Buffer of `ref.size` bytes (or `into`). Refuses,
 * before dialling, a payload larger than `max_bytes`; fails when the server refuses, announces
 * another size, sends more or fewer bytes, or the deadline passes.
 */
export async function fetchRemotePayload(
  ref: PayloadRef,
  origin: PayloadOrigin,
  access: FetchAccess,
  into?: Uint8Array,
): Promise<Buffer> {
  if (ref.size > access.max_bytes) {
    throw new OmniError(
      'OMNI_PAYLOAD_TOO_LARGE',
      `payload ${ref.key} has ${ref.size} bytes, more than the ${access.max_bytes} a replica may fetch from another host`,
      {
        hint: "raise the head's --max-payload-bytes, or keep the producing and consuming stages on one host",
        context: { key: ref.key, size: ref.size, max_bytes: access.max_bytes },
      },
    );
  }
  if (into !== undefined && into.byteLength < ref.size)
    throw fetchError(`payload ${ref.key} has ${ref.size} bytes, the buffer to read it into only ${into.byteLength}`);
  const target =
    into === undefined ? Buffer.allocUnsafeSlow(ref.size) : Buffer.from(into.buffer, into.byteOffset, ref.size);
  const request = {
    v: PAYLOAD_WIRE_VERSION,
    op: 'get',
    run: access.run_id,
    key: ref.key,
    size: ref.size,
    ...(ref.segment_bytes === undefined ? {} : { segment_bytes: ref.segment_bytes }),
    token: access.token,
  };
  await exchange(origin, access, request, `fetching payload ${ref.key} from host ${origin.host_id}`, (header) => {
    if (header['size'] !== ref.size)
      throw fetchError(
        `host ${origin.host_id} announced ${String(header['size'])} bytes for payload ${ref.key}, its reference says ${ref.size}`,
      );
    return target;
  });
  return target;
}

/** Asks the origin host to free a payload (the head, on the last hold). */
export async function releaseRemotePayload(ref: PayloadRef, origin: PayloadOrigin, access: FetchAccess): Promise<void> {
  const request = { v: PAYLOAD_WIRE_VERSION, op: 'release', run: access.run_id, key: ref.key, token: access.token };
  await exchange(origin, access, request, `releasing payload ${ref.key} on host ${origin.host_id}`, () => null);
}

/** `tcp://HOST:PORT` → host and port. */
export function parsePayloadUrl(url: string): { host: string; port: number } {
  const m = /^tcp:\/\/\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(url);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || !(port > 0 && port < 65536))
    throw fetchError(`payload server address ${JSON.stringify(url)} is not tcp://HOST:PORT`);
  return { host: m[1]!, port };
}

/**
 * One request: dial, send the header, read the reply header; `body(header)` returns the Buffer
 * the announced bytes go into (null: none follow). Resolves once the body is complete.
 */
async function exchange(
  origin: PayloadOrigin,
  access: FetchAccess,
  request: Record<string, unknown>,
  what: string,
  body: (header: Record<string, unknown>) => Buffer | null,
): Promise<void> {
  const { host, port } = parsePayloadUrl(origin.url);
  // node:tls is loaded only when the cluster uses it (as for the control connection).
  const connectTls = access.tls === undefined ? undefined : (await import('node:tls')).connect;
  const local = access.local_address === undefined ? {} : { localAddress: access.local_address };
  return new Promise<void>((resolve, reject) => {
    const socket: Socket =
      connectTls === undefined
        ? connectTcp({ host, port, ...local })
        : connectTls({
            ...local,
            host,
            port,
            ...access.tls,
            minVersion: 'TLSv1.2',
            ...(isIP(host) === 0 ? { servername: host } : {}),
          });
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err === undefined) resolve();
      else reject(err instanceof OmniError ? err : fetchError(`${what} failed: ${(err as Error).message}`, err));
    };
    const timer = setTimeout(
      () => finish(fetchError(`${what} did not finish within ${access.timeout_ms} ms`)),
      access.timeout_ms,
    );
    const reader = new ReplyReader(body, what);
    socket.once(access.tls === undefined ? 'connect' : 'secureConnect', () => {
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        if (reader.push(chunk)) finish();
      } catch (err) {
        finish(err);
      }
    });
    socket.once('end', () => finish(reader.endError()));
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(reader.endError()));
  });
}

/** Reads a reply: the header line, then the body straight into its Buffer (no intermediate copy). */
class ReplyReader {
  readonly #body: (header: Record<string, unknown>) => Buffer | null;
  readonly #what: string;
  #head: Buffer[] = [];
  #headBytes = 0;
  #target: Buffer | null | undefined;
  #filled = 0;

  constructor(body: (header: Record<string, unknown>) => Buffer | null, what: string) {
    this.#body = body;
    this.#what = what;
  }

  /** True once the reply is complete. */
  push(chunk: Buffer): boolean {
    let rest = chunk;
    if (this.#target === undefined) {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        this.#headBytes += chunk.byteLength;
        if (this.#headBytes > PAYLOAD_HEADER_MAX_BYTES)
          throw fetchError(`${this.#what}: the reply is not a payload server's`);
        this.#head.push(chunk);
        return false;
      }
      this.#head.push(chunk.subarray(0, nl));
      this.#target = this.#body(this.#header(Buffer.concat(this.#head).toString('utf8')));
      rest = chunk.subarray(nl + 1);
    }
    const target = this.#target;
    if (target === null) return true;
    if (this.#filled + rest.byteLength > target.byteLength)
      throw fetchError(`${this.#what}: the server sent more than the ${target.byteLength} bytes it announced`);
    rest.copy(target, this.#filled);
    this.#filled += rest.byteLength;
    return this.#filled === target.byteLength;
  }

  /** Why a connection that ended now is a failure. */
  endError(): OmniError {
    if (this.#target === undefined) return fetchError(`${this.#what}: the connection closed before a reply`);
    return fetchError(
      `${this.#what}: the connection closed after ${this.#filled} of ${this.#target?.byteLength ?? 0} bytes`,
    );
  }

  #header(line: string): Record<string, unknown> {
    let header: unknown;
    try {
      header = JSON.parse(line);
    } catch {
      throw fetchError(`${this.#what}: the reply is not a payload server's`);
    }
    const h = (typeof header === 'object' && header !== null ? header : {}) as Record<string, unknown>;
    if (h['ok'] !== true) throw fetchError(`${this.#what} was refused: ${String(h['error'] ?? 'no reason given')}`);
    return h;
  }
}
