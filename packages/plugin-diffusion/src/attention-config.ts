import { OmniError } from '@omnistage/core';
import type { ErrorContext, SourceLocation } from '@omnistage/core';
import { unknownKeyHint } from './unknown-key-hint.js';
import { UNKNOWN_KEY_CODE, describeValue, isPlainObject } from './value-checks.js';

/** One attention backend choice: a registry name (`FLASH_ATTN`, `SDPA`, …) and its options. */
export interface DiffusionAttentionSpec {
  backend: string;
  extra: Record<string, unknown>;
}

/**
 * Normalised `diffusion_attention_config`: a default backend and per-role overrides. Role keys are
 * dotted (`cross`, `ltx2.audio_to_video`); lookup order is exact role, then role category, then
 * `default`, then the platform's own choice (upstream `AttentionConfig`).
 */
export interface DiffusionAttentionConfig {
  /** null = let the platform choose. */
  default: DiffusionAttentionSpec | null;
  per_role: Record<string, DiffusionAttentionSpec>;
}

/** Maps a dotted path inside the attention config (`'per_role.cross'`) to its source; `''` = the value itself. */
export type AttentionConfigLocator = (path: string) => SourceLocation;

const CONFIG_KEYS = ['default', 'per_role'] as const;
const SPEC_KEYS = ['backend', 'extra'] as const;

/**
 * Normalises `engine_args.diffusion_attention_config` (as upstream's
 * `build_engine_args_dict` does for diffusion stages, with `parse_attention_config` / `AttentionConfig`) into `{ default, per_role }`:
 *
 * - `null`/absent → `{ default: null, per_role: {} }`;
 * - a string → that backend as the default (shorthand of upstream's `diffusion_attention_backend`);
 * - a mapping with `default` and/or `per_role`; each spec is a backend string or
 *   `{ backend, extra? }`; nested role mappings flatten to dotted roles
 *   (`per_role: { ltx2: { audio_to_video: FLASH_ATTN } }` → role `ltx2.audio_to_video`);
 * - backend `auto` (any case) means "no override" and is dropped.
 *
 * Invalid shapes throw `OMNI_CONFIG_INVALID` located via `locate`.
 */
export function normalizeDiffusionAttentionConfig(
  value: unknown,
  locate?: AttentionConfigLocator,
  context: ErrorContext = {},
): DiffusionAttentionConfig {
  const at: ConfigSite = { locate, context };
  if (value === undefined || value === null) return { default: null, per_role: {} };
  if (typeof value === 'string') return { default: readSpec(at, '', value), per_role: {} };
  if (!isPlainObject(value)) {
    return fail(
      at,
      '',
      `diffusion_attention_config must be a backend name or a mapping with default/per_role, got ${describeValue(value)}`,
      'e.g. diffusion_attention_config: { default: FLASH_ATTN, per_role: { cross: SDPA } }',
    );
  }
  rejectUnknownKeys(at, '', value, CONFIG_KEYS, 'diffusion_attention_config');
  const byDefault =
    value.default === undefined || value.default === null ? null : readSpec(at, 'default', value.default);
  const perRole = value.per_role ?? {};
  if (!isPlainObject(perRole)) {
    return fail(
      at,
      'per_role',
      `diffusion_attention_config.per_role must be a mapping of role → backend, got ${describeValue(perRole)}`,
      'e.g. per_role: { self: FLASH_ATTN, cross: SDPA }',
    );
  }
  const result: DiffusionAttentionConfig = { default: byDefault, per_role: {} };
  for (const [role, node] of Object.entries(perRole)) readRole(at, [role], node, result.per_role);
  return result;
}

/** Where errors about the config point, and the context they carry. */
interface ConfigSite {
  locate: AttentionConfigLocator | undefined;
  context: ErrorContext;
}

function fail(at: ConfigSite, path: string, message: string, hint: string): never {
  throw new OmniError('OMNI_CONFIG_INVALID', message, {
    location: at.locate?.(path),
    hint,
    context: { ...at.context },
  });
}

function settingName(path: string): string {
  return path === '' ? 'diffusion_attention_config' : `diffusion_attention_config.${path}`;
}

function rejectUnknownKeys(
  at: ConfigSite,
  path: string,
  value: Record<string, unknown>,
  known: readonly string[],
  what: string,
): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new OmniError(UNKNOWN_KEY_CODE, `${settingName(path)} has an unknown key "${key}"`, {
        location: at.locate?.(path === '' ? key : `${path}.${key}`),
        hint: unknownKeyHint(key, known, what),
        context: { ...at.context },
      });
    }
  }
}

/** One spec: a backend name or `{ backend, extra? }`; null for `auto`. */
function readSpec(at: ConfigSite, path: string, raw: unknown): DiffusionAttentionSpec | null {
  if (typeof raw === 'string') return isAuto(raw) ? null : { backend: raw, extra: {} };
  if (!isPlainObject(raw)) {
    return fail(
      at,
      path,
      `${settingName(path)} must be a backend name or { backend, extra }, got ${describeValue(raw)}`,
      'write a backend name such as FLASH_ATTN, or { backend: FLASH_ATTN, extra: {...} }',
    );
  }
  rejectUnknownKeys(at, path, raw, SPEC_KEYS, 'an attention spec');
  const backend = raw.backend;
  if (typeof backend !== 'string' || backend === '') {
    return fail(
      at,
      `${path}.backend`,
      `${settingName(path)}.backend must be a backend name, got ${describeValue(backend)}`,
      'give the backend as a string, e.g. backend: FLASH_ATTN',
    );
  }
  const extra = raw.extra ?? {};
  if (!isPlainObject(extra)) {
    return fail(
      at,
      `${path}.extra`,
      `${settingName(path)}.extra must be a mapping, got ${describeValue(extra)}`,
      'write backend options as a mapping, or remove extra',
    );
  }
  return isAuto(backend) ? null : { backend, extra: { ...extra } };
}

/** Nested role mappings flatten to dotted role names; a mapping that holds backend/extra is a spec. */
function readRole(at: ConfigSite, role: string[], node: unknown, out: Record<string, DiffusionAttentionSpec>): void {
  const path = ['per_role', ...role].join('.');
  if (isPlainObject(node)) {
    const keys = Object.keys(node);
    const specKeys = keys.filter((k) => (SPEC_KEYS as readonly string[]).includes(k));
    if (specKeys.length === 0) {
      if (keys.length === 0) {
        fail(at, path, `${settingName(path)} is empty`, 'give the role a backend, e.g. FLASH_ATTN, or remove it');
      }
      for (const child of keys) readRole(at, [...role, child], node[child], out);
      return;
    }
    if (specKeys.length !== keys.length) {
      const nested = keys.filter((k) => !specKeys.includes(k));
      fail(
        at,
        path,
        `${settingName(path)} mixes backend/extra with nested roles (${nested.join(', ')})`,
        'give a role either { backend, extra } or nested roles, not both',
      );
    }
  }
  const s = readSpec(at, path, node);
  if (s !== null) out[role.join('.')] = s;
}

function isAuto(backend: string): boolean {
  return backend.toLowerCase() === 'auto';
}
