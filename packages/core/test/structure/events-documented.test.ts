/**
 * Plugins subscribe to events by name, so an event missing from docs/plugins.md is one a plugin
 * author cannot find: every `type` of the `OmniEvent` union must have its row there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGES_DIR } from './source-files.js';

const typesFile = readFileSync(join(PACKAGES_DIR, 'core', 'src', 'events', 'types.ts'), 'utf8');
const pluginsDoc = readFileSync(join(PACKAGES_DIR, '..', 'docs', 'plugins.md'), 'utf8');

describe('events in docs/plugins.md', () => {
  it('every event type has a row in the events table', () => {
    const types = [...new Set([...typesFile.matchAll(/type: '([a-z]+:[a-z_]+)'/g)].map((m) => m[1]!))];
    // The union has more than the handful a broken pattern would find.
    expect(types.length).toBeGreaterThan(20);
    const rows = pluginsDoc.split('\n').filter((line) => line.startsWith('| `'));
    const missing = types.filter((t) => !rows.some((row) => row.split('|')[1]!.includes(`\`${t}\``)));
    expect(missing).toEqual([]);
  });
});
