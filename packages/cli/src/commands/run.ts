import type { Logger } from 'pino';
import { OmniError } from '@omnistage/core';
import type { CliValues } from '../args.js';

export async function runCommand(_file: string, _values: CliValues, _logger: Logger): Promise<number> {
  throw new OmniError('OMNI_USAGE', '`omnistage run` is not implemented yet');
}
