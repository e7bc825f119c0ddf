/**
 * Payload references: how a tensor or a media file travels between stages. A reference is small
 * JSON that rides in a stage's `output` data (and so in the next stage's `input`); the bytes are
 * either inside it (`via: 'inline'`, base64) or in a shared-memory file named by `key`
 * (`via: 'shm'`, see shm-store.ts), which only the producer and the consumers ever touch.
 *
 * Imported by the worker SDK: node built-ins only.
 */

/** Marker field of a payload reference (value 1: the reference format version). */
export const PAYLOAD_MARK = '$payload';

/**
 * How the bytes of a payload travel: inside the reference, in a shared-memory file, or through the
 * connector class a plugin defined (its name; see payload-connector.ts).
 */
export type PayloadVia = 'inline' | 'shm' | (string & {});

/** Optional description of the bytes, kept next to them in the reference. */
export interface PayloadMeta {
  /** Element type of a tensor, e.g. `float32`. */
  dtype?: string;
  /** Shape of a tensor. */
  shape?: number[];
  /** Media type of a file, e.g. `image/png`. */
  mime?: string;
}

/**
 * A reference to one payload. Other fields may sit next to these (an image output is a reference
 * with `kind`, `width`, `height`...); readers ignore what they do not know. An inline reference
 * carries `data_base64`, so readers of the older `{dtype, shape, data_base64}` /
 * `{kind, mime, data_base64}` shapes keep working.
 */
export interface PayloadRef extends PayloadMeta {
  $payload: 1;
  /** Unique in the run for `shm` (names the file) and plugin connectors; informative for `inline`. */
  key: string;
  /** Byte length of the payload. */
  size: number;
  via: PayloadVia;
  /** The bytes, for `inline`. */
  data_base64?: string;
  /**
   * `shm` from a producer's pool: the payload is the first `size` bytes of a segment file of
   * exactly this many bytes (see shm-pool.ts).
   */
  segment_bytes?: number;
  /**
   * `shm` in head mode: the host whose shared memory holds the bytes and its payload server. A
   * consumer on another host fetches them from there (payload-fetch.ts); on the same host it reads
   * the file as always.
   */
  origin?: PayloadOrigin;
}

/** Where a stored payload lives: the host that wrote it and its payload server (`tcp://HOST:PORT`). */
// A type, not an interface: references are JSON, and only a type alias is assignable to JsonObject.
export type PayloadOrigin = {
  host_id: string;
  url: string;
};

/** Keys of shm payloads: letters, digits and `_` (no `-`, so a key never reads as part of a run id). */
const KEY_RE = /^[A-Za-z0-9_]{1,128}$/;

/** True for a key that may name a payload file. */
export function isValidPayloadKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_RE.test(key);
}

/**
 * True for a well-formed payload reference: an inline one carries its bytes; any other (`shm`, or
 * a plugin connector's class name) a valid key.
 */
export function isPayloadRef(value: unknown): value is PayloadRef {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  if (v[PAYLOAD_MARK] !== 1 || typeof v['key'] !== 'string') return false;
  if (!Number.isSafeInteger(v['size']) || (v['size'] as number) < 0) return false;
  if (v['via'] === 'inline') return typeof v['data_base64'] === 'string';
  const segment = v['segment_bytes'];
  if (segment !== undefined && !(Number.isSafeInteger(segment) && (segment as number) >= (v['size'] as number)))
    return false;
  return isConnectorClassName(v['via']) && isValidPayloadKey(v['key']);
}

/** True for a string that may name a connector class, and so be a reference's `via` (`shm` is one). */
export function isConnectorClassName(name: unknown): name is string {
  return typeof name === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,127}$/.test(name);
}

/** True for a reference whose bytes live outside it (shm or a plugin connector): someone must free them. */
export function isStoredPayload(ref: PayloadRef): boolean {
  return ref.via !== 'inline';
}

/**
 * The payload references in a stage output or input: `data` itself, its fields (or items), and
 * their fields (or items) — "shallow plus one level nested", which covers `{tensor: ref}`,
 * `[{tensor: ref}, ...]` (several sources) and `{kind: 'image', ...ref}`. Deeper ones are not
 * looked for.
 */
export function findPayloadRefs(data: unknown): PayloadRef[] {
  const found: PayloadRef[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (isPayloadRef(value)) {
      found.push(value);
      return;
    }
    if (depth >= 2 || typeof value !== 'object' || value === null) return;
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child, depth + 1);
  };
  visit(data, 0);
  return found;
}

/**
 * A copy of `data` where every reference {@link findPayloadRefs} would find is replaced by
 * `replace(ref)`; everything else is shared, not copied. Returns `data` itself when it holds none.
 */
export async function mapPayloadRefs(data: unknown, replace: (ref: PayloadRef) => Promise<unknown>): Promise<unknown> {
  const visit = async (value: unknown, depth: number): Promise<unknown> => {
    if (isPayloadRef(value)) return replace(value);
    if (depth >= 2 || typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) {
      const items = await Promise.all(value.map((v) => visit(v, depth + 1)));
      return items.every((v, i) => v === value[i]) ? value : items;
    }
    const entries = Object.entries(value);
    const mapped = await Promise.all(entries.map(async ([k, v]) => [k, await visit(v, depth + 1)] as const));
    return mapped.every(([, v], i) => v === entries[i]![1]) ? value : Object.fromEntries(mapped);
  };
  return visit(data, 0);
}

/** An inline reference holding `bytes`. Its key is derived from the content (FNV-1a), so equal outputs stay equal. */
export function inlinePayloadRef(bytes: Uint8Array, meta: PayloadMeta = {}): PayloadRef {
  return {
    $payload: 1,
    key: `i_${fnv1a(bytes).toString(16).padStart(8, '0')}`,
    size: bytes.byteLength,
    via: 'inline',
    ...metaOf(meta),
    data_base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
  };
}

/** Only the known, well-typed meta fields (a caller's extra fields do not leak into references). */
export function metaOf(meta: PayloadMeta): PayloadMeta {
  const out: PayloadMeta = {};
  if (typeof meta.dtype === 'string') out.dtype = meta.dtype;
  if (Array.isArray(meta.shape) && meta.shape.every((n) => Number.isSafeInteger(n) && n >= 0))
    out.shape = [...meta.shape];
  if (typeof meta.mime === 'string') out.mime = meta.mime;
  return out;
}

function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
