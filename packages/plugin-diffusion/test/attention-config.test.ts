import type { SourceLocation } from '@omnistage/core';
import { describe, expect, it } from 'vitest';
import { normalizeDiffusionAttentionConfig } from '../src/attention-config.js';
import { errorOf } from './error-of.js';

const locate = (path: string): SourceLocation => ({ file: `attn[${path}]`, line: 1, col: 1 });

describe('normalizeDiffusionAttentionConfig', () => {
  it('turns null/absent into an empty config', () => {
    expect(normalizeDiffusionAttentionConfig(undefined)).toEqual({ default: null, per_role: {} });
    expect(normalizeDiffusionAttentionConfig(null)).toEqual({ default: null, per_role: {} });
  });

  it('treats a string as the default backend, and "auto" as no override', () => {
    expect(normalizeDiffusionAttentionConfig('FLASH_ATTN')).toEqual({
      default: { backend: 'FLASH_ATTN', extra: {} },
      per_role: {},
    });
    expect(normalizeDiffusionAttentionConfig('AUTO')).toEqual({ default: null, per_role: {} });
    expect(
      normalizeDiffusionAttentionConfig({
        default: { backend: 'Auto' },
        per_role: { cross: { backend: 'auto', extra: { a: 1 } } },
      }),
    ).toEqual({
      default: null,
      per_role: {},
    });
  });

  it('normalises partial objects and flattens nested roles', () => {
    expect(normalizeDiffusionAttentionConfig({ default: 'SDPA' })).toEqual({
      default: { backend: 'SDPA', extra: {} },
      per_role: {},
    });
    expect(normalizeDiffusionAttentionConfig({ per_role: { cross: 'SDPA' } })).toEqual({
      default: null,
      per_role: { cross: { backend: 'SDPA', extra: {} } },
    });
    expect(
      normalizeDiffusionAttentionConfig({
        default: { backend: 'FLASH_ATTN', extra: { window: 8 } },
        per_role: {
          self: 'auto',
          cross: { backend: 'SDPA' },
          ltx2: { audio_to_video: 'SAGE_ATTN', video_to_audio: { backend: 'SDPA', extra: { causal: true } } },
        },
      }),
    ).toEqual({
      default: { backend: 'FLASH_ATTN', extra: { window: 8 } },
      per_role: {
        cross: { backend: 'SDPA', extra: {} },
        'ltx2.audio_to_video': { backend: 'SAGE_ATTN', extra: {} },
        'ltx2.video_to_audio': { backend: 'SDPA', extra: { causal: true } },
      },
    });
  });

  it('rejects unknown keys with a did-you-mean', () => {
    const err = errorOf(() => normalizeDiffusionAttentionConfig({ defualt: 'SDPA' }, locate, { stage_id: 2 }));
    expect(err.code).toBe('OMNI_CONFIG_INVALID');
    expect(err.hint).toBe('did you mean "default"?');
    expect(err.location).toEqual(locate('defualt'));
    expect(err.context.stage_id).toBe(2);
    expect(
      errorOf(() => normalizeDiffusionAttentionConfig({ default: { backend: 'X', extras: {} } }, locate)).hint,
    ).toBe('did you mean "extra"?');
  });

  it('rejects malformed specs at their path', () => {
    const mixed = errorOf(() =>
      normalizeDiffusionAttentionConfig({ per_role: { ltx2: { backend: 'X', inner: 'Y' } } }, locate),
    );
    expect(mixed.message).toContain('mixes backend/extra with nested roles');
    expect(mixed.location).toEqual(locate('per_role.ltx2'));
    expect(errorOf(() => normalizeDiffusionAttentionConfig({ per_role: { ltx2: {} } }, locate)).message).toContain(
      'is empty',
    );
    expect(errorOf(() => normalizeDiffusionAttentionConfig({ default: { backend: 3 } }, locate)).location).toEqual(
      locate('default.backend'),
    );
    expect(
      errorOf(() => normalizeDiffusionAttentionConfig({ default: { backend: 'X', extra: 'y' } }, locate)).location,
    ).toEqual(locate('default.extra'));
    expect(errorOf(() => normalizeDiffusionAttentionConfig({ per_role: { cross: null } }, locate)).location).toEqual(
      locate('per_role.cross'),
    );
    expect(errorOf(() => normalizeDiffusionAttentionConfig({ per_role: 'SDPA' }, locate)).location).toEqual(
      locate('per_role'),
    );
    expect(errorOf(() => normalizeDiffusionAttentionConfig(42, locate)).location).toEqual(locate(''));
  });

  it('does not share the extra object with the input', () => {
    const extra = { a: 1 };
    const out = normalizeDiffusionAttentionConfig({ default: { backend: 'X', extra } });
    expect(out.default?.extra).toEqual(extra);
    expect(out.default?.extra).not.toBe(extra);
  });
});
