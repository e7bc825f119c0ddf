/**
 * Renders docs/errors.md from the catalogue, so the page can never say something the code does
 * not. Written by `npm run docs:errors`; a test fails when the committed page differs.
 */
import { ERROR_CATALOGUE, WARNING_CATALOGUE } from './errors.js';
import { CONFIG_LIMITS, PLAN_LIMITS } from './limits.js';

const cell = (text: string): string => text.replace(/\|/g, '\\|');
const sentence = (text: string): string => {
  const s = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
};

/** The whole text of docs/errors.md. */
export function renderErrorDocs(): string {
  const lines = [
    '# Errors and warnings',
    '',
    '<!-- Generated from packages/core/src/errors.ts by `npm run docs:errors`; do not edit. -->',
    '',
    'Every failure omnistage reports carries one of these codes, a location (`file:line:col` for',
    'configuration, the request field for an API call) and a hint. Exit code 2 means the',
    'configuration or the command line is wrong; exit code 1 means something failed at run time.',
    'Warnings never change the exit code. `omnistage serve` answers a request that one of these errors',
    'ends with the HTTP status shown and the code as `error.code` (docs/serving.md).',
    '',
    '## Errors',
    '',
    '| Code | When | Exit code | HTTP status | How to fix |',
    '| --- | --- | --- | --- | --- |',
    ...Object.entries(ERROR_CATALOGUE).map(
      ([code, e]) =>
        `| \`${code}\` | ${cell(sentence(e.summary))} | ${e.exitCode} | ${e.httpStatus} | ${cell(e.fix)} |`,
    ),
    '',
    '## Warnings',
    '',
    'Findings in a pipeline file are printed as `file:line:col: warning CODE: message`. Warnings while a',
    'pipeline runs are log records of level `warn` whose `code` field is one of these codes (with',
    '`--log-format json`; the default log shows the code before the message).',
    '',
    '| Code | When | Severity | How to fix |',
    '| --- | --- | --- | --- |',
    ...Object.entries(WARNING_CATALOGUE).map(
      ([code, w]) => `| \`${code}\` | ${cell(sentence(w.summary))} | warning | ${cell(w.fix)} |`,
    ),
    '',
    '## Limits',
    '',
    'Inputs past these limits are refused with `OMNI_CONFIG_PARSE` (or `OMNI_CONFIG_OVERRIDE_INVALID`) and',
    '`OMNI_CONFIG_INVALID` at the offending position, so that no input can take more than about a second',
    'or unbounded memory (packages/core/src/limits.ts).',
    '',
    '| Limit | Value |',
    '| --- | --- |',
    ...Object.entries({ ...CONFIG_LIMITS, ...PLAN_LIMITS }).map(([name, value]) => `| \`${name}\` | ${value} |`),
    '',
  ];
  return lines.join('\n');
}
