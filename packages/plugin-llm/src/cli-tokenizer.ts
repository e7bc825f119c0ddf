import type { EngineArgs } from '@omnistage/core';

/** Inputs of {@link applyCliTokenizer}. */
export interface ApplyCliTokenizerOptions {
  /** `--tokenizer` from the command line; `null`/`undefined` = not given. */
  cliTokenizer: string | null | undefined;
  /**
   * Whether the stage declares its own tokenizer: `tokenizer` or `tokenizer_subdir` non-null in its
   * engine args, computed by the caller *before* sub-directory resolution (which may add an
   * inferred `tokenizer` that the CLI value is allowed to override).
   */
  stageDefinesTokenizer: boolean;
}

/**
 * Forwards the CLI tokenizer into `engineArgs.tokenizer` unless the stage defines its own
 * (upstream `apply_cli_tokenizer`).
 *
 * **Mutates `engineArgs`** like upstream does: it is meant to run on the working copy inside
 * {@link buildEngineArgsDict}, never on a stage config. Only `null`/`undefined` count as "not
 * given", so an empty string is forwarded as it is (Python's `is None` test).
 */
export function applyCliTokenizer(engineArgs: EngineArgs, options: ApplyCliTokenizerOptions): void {
  const { cliTokenizer, stageDefinesTokenizer } = options;
  if (cliTokenizer === null || cliTokenizer === undefined || stageDefinesTokenizer) return;
  engineArgs['tokenizer'] = cliTokenizer;
}
