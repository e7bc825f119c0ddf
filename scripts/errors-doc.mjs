// Writes docs/errors.md from the error catalogue (packages/core/src/errors.ts, built to dist/).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderErrorDocs } from '../packages/core/dist/error-docs.js';

const target = join(import.meta.dirname, '..', 'docs', 'errors.md');
writeFileSync(target, renderErrorDocs());
process.stdout.write(`wrote ${target}\n`);
