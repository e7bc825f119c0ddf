import type { ErrorCode, SourceLocation, WarningCode } from './errors.js';

/**
 * A non-fatal finding (deprecated key, over-commit allowed by flag, ...). The `code` is a warning
 * code of `WARNING_CATALOGUE` or an error code downgraded to a warning; any other string is a
 * compile error.
 */
export interface Diagnostic {
  code: WarningCode | ErrorCode;
  message: string;
  hint?: string;
  file: string | null;
  line: number | null;
  col: number | null;
}

/** Creates a warning; the code must be in the catalogue (errors.ts). */
export function diagnostic(
  code: Diagnostic['code'],
  message: string,
  location?: SourceLocation,
  hint?: string,
): Diagnostic {
  return {
    code,
    message,
    ...(hint === undefined ? {} : { hint }),
    file: location?.file ?? null,
    line: location?.line ?? null,
    col: location?.col ?? null,
  };
}
