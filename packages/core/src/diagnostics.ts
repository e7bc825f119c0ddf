import type { ErrorCode, SourceLocation } from './errors.js';

/**
 * A non-fatal finding (deprecated key, over-commit allowed by flag, ...). The `code` is a stable
 * warning code (`OMNI_WARN_*`) or an error code downgraded to a warning.
 */
export interface Diagnostic {
  code: `OMNI_WARN_${string}` | ErrorCode;
  message: string;
  hint?: string;
  file: string | null;
  line: number | null;
  col: number | null;
}

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
