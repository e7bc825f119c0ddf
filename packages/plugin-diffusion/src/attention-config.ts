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
 * Normalises `engine_args.diffusion_attention_config` (spec b.22 step 10; upstream
 * `parse_attention_config` / `AttentionConfig`) into `{ default, per_role }`:
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
  const fail = (path: string, message: string, hint: string): never => {
    throw new OmniError('OMNI_CONFIG_INVALID', message, { location: locate?.(path), hint, context: { ...context } });
  };
  const name = (path: string): string =>
    path === '' ? 'diffusion_attention_config' : `diffusion_attention_config.${path}`;

  const spec = (path: string, raw: unknown): DiffusionAttentionSpec | null => {
    if (typeof raw === 'string') return isAuto(raw) ? null : { backend: raw, extra: {} };
    if (!isPlainObject(raw)) {
      return fail(
        path,
        `${name(path)} must be a backend name or { backend, extra }, got ${describeValue(raw)}`,
        'write a backend name such as FLASH_ATTN, or { backend: FLASH_ATTN, extra: {...} }',
      );
    }
    for (const key of Object.keys(raw)) {
      if (!(SPEC_KEYS as readonly string[]).includes(key)) {
        throw new OmniError(UNKNOWN_KEY_CODE, `${name(path)} has an unknown key "${key}"`, {
          location: locate?.(`${path}.${key}`),
          hint: unknownKeyHint(key, SPEC_KEYS, 'an attention spec'),
          context: { ...context },
        });
      }
    }
    const backend = raw.backend;
    if (typeof backend !== 'string' || backend === '') {
      return fail(
        `${path}.backend`,
        `${name(path)}.backend must be a backend name, got ${describeValue(backend)}`,
        'give the backend as a string, e.g. backend: FLASH_ATTN',
      );
    }
    const extra = raw.extra ?? {};
    if (!isPlainObject(extra)) {
      return fail(
        `${path}.extra`,
        `${name(path)}.extra must be a mapping, got ${describeValue(extra)}`,
        'write backend options as a mapping, or remove extra',
      );
    }
    return isAuto(backend) ? null : { backend, extra: { ...extra } };
  };

  if (value === undefined || value === null) return { default: null, per_role: {} };
  if (typeof value === 'string') return { default: spec('', value), per_role: {} };
  if (!isPlainObject(value)) {
    return fail(
      '',
      `diffusion_attention_config must be a backend name or a mapping with default/per_role, got ${describeValue(value)}`,
      'e.g. diffusion_attention_config: { default: FLASH_ATTN, per_role: { cross: SDPA } }',
    );
  }
  for (const key of Object.keys(value)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new OmniError(UNKNOWN_KEY_CODE, `diffusion_attention_config has an unknown key "${key}"`, {
        location: locate?.(key),
        hint: unknownKeyHint(key, CONFIG_KEYS, 'diffusion_attention_config'),
        context: { ...context },
      });
    }
  }

  const result: DiffusionAttentionConfig = {
    default: value.default === undefined || value.default === null ? null : spec('default', value.default),
    per_role: {},
  };
  const perRole = value.per_role ?? {};
  if (!isPlainObject(perRole)) {
    return fail(
      'per_role',
      `diffusion_attention_config.per_role must be a mapping of role → backend, got ${describeValue(perRole)}`,
      'e.g. per_role: { self: FLASH_ATTN, cross: SDPA }',
    );
  }

  // Nested role mappings flatten to dotted role names; a mapping that holds backend/extra is a spec.
  const visit = (role: string[], node: unknown): void => {
    const path = ['per_role', ...role].join('.');
    if (isPlainObject(node)) {
      const keys = Object.keys(node);
      const specKeys = keys.filter((k) => (SPEC_KEYS as readonly string[]).includes(k));
      if (specKeys.length === 0) {
        if (keys.length === 0) {
          fail(path, `${name(path)} is empty`, 'give the role a backend, e.g. FLASH_ATTN, or remove it');
        }
        for (const child of keys) visit([...role, child], node[child]);
        return;
      }
      if (specKeys.length !== keys.length) {
        const nested = keys.filter((k) => !specKeys.includes(k));
        fail(
          path,
          `${name(path)} mixes backend/extra with nested roles (${nested.join(', ')})`,
          'give a role either { backend, extra } or nested roles, not both',
        );
      }
    }
    const s = spec(path, node);
    if (s !== null) result.per_role[role.join('.')] = s;
  };
  for (const [role, node] of Object.entries(perRole)) visit([role], node);
  return result;
}

function isAuto(backend: string): boolean {
  return backend.toLowerCase() === 'auto';
}
