import { describe, expect, it } from 'vitest';
import { applyCliTokenizer } from '../src/cli-tokenizer.js';

describe('applyCliTokenizer (b.3)', () => {
  it('forwards the CLI tokenizer when the stage defines none', () => {
    const args: Record<string, unknown> = { max_model_len: 10 };
    applyCliTokenizer(args, { cliTokenizer: '/tok', stageDefinesTokenizer: false });
    expect(args).toEqual({ max_model_len: 10, tokenizer: '/tok' });
  });

  it('overrides an inferred tokenizer (the caller computed stageDefinesTokenizer before inference)', () => {
    const args: Record<string, unknown> = { tokenizer: '/models/base' };
    applyCliTokenizer(args, { cliTokenizer: '/cli-tok', stageDefinesTokenizer: false });
    expect(args['tokenizer']).toBe('/cli-tok');
  });

  it('keeps a stage-declared tokenizer', () => {
    const args: Record<string, unknown> = { tokenizer: '/stage-tok' };
    applyCliTokenizer(args, { cliTokenizer: '/cli-tok', stageDefinesTokenizer: true });
    expect(args['tokenizer']).toBe('/stage-tok');
  });

  it('does nothing without a CLI tokenizer (null or undefined)', () => {
    const a: Record<string, unknown> = {};
    applyCliTokenizer(a, { cliTokenizer: null, stageDefinesTokenizer: false });
    applyCliTokenizer(a, { cliTokenizer: undefined, stageDefinesTokenizer: false });
    expect(a).toEqual({});
  });

  it("forwards an empty string (Python's `is None` test)", () => {
    const a: Record<string, unknown> = {};
    applyCliTokenizer(a, { cliTokenizer: '', stageDefinesTokenizer: false });
    expect(a).toEqual({ tokenizer: '' });
  });
});
