/**
 * Plugins from outside: modules named in a pipeline file or on the command line, with options,
 * dependencies and a core version range — every failure a clear OMNI_PLUGIN_INVALID.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOmniError, type OmniError } from '../../src/errors.js';
import { loadPipelineConfig } from '../../src/config/load-pipeline.js';
import { Omnistage } from '../../src/omnistage.js';
import { loadPlugins } from '../../src/plugin-loader.js';
import { CORE_VERSION, satisfiesRange } from '../../src/version.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plugin-loading-'));
  writeFileSync(
    join(dir, 'factory.mjs'),
    `export default (options, context) => ({ name: 'factory-plugin', apply(api) { api.events.onAny(() => {}); this.seen = options; this.context = context; } });\n`,
  );
  writeFileSync(join(dir, 'object.mjs'), `export const plugin = { name: 'object-plugin', apply() {} };\n`);
  writeFileSync(join(dir, 'nothing.mjs'), `export const x = 1;\n`);
  writeFileSync(join(dir, 'throws.mjs'), `export default () => { throw new Error('bad options'); };\n`);
  writeFileSync(
    join(dir, 'pipeline.yaml'),
    [
      'plugins:',
      '  - path: ./factory.mjs',
      '    options: { colour: blue }',
      '  - ./missing.mjs',
      'stage_args:',
      '  - stage_id: 0',
      '',
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function fails(p: Promise<unknown>): Promise<OmniError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isOmniError(err)) throw new Error(`expected an OmniError, got ${String(err)}`);
  return err;
}

describe('loadPlugins', () => {
  it('calls a default-export factory with its options and the folder relative paths start from, and accepts a `plugin` object export', async () => {
    const [a, b] = await loadPlugins(
      [{ specifier: './factory.mjs', options: { colour: 'blue' } }, { specifier: join(dir, 'object.mjs') }],
      dir,
    );
    expect(a?.name).toBe('factory-plugin');
    expect(b?.name).toBe('object-plugin');
    // apply() gets a plugin API, not the orchestrator; the fixture records what its factory was given on itself.
    new Omnistage({ plugins: [a!] });
    const applied = a as typeof a & { seen?: unknown; context?: unknown };
    expect(applied.seen).toEqual({ colour: 'blue' });
    expect(applied.context).toEqual({ baseDir: dir });
  });

  it('names the YAML line of a plugin that cannot be loaded', async () => {
    const config = await loadPipelineConfig(join(dir, 'pipeline.yaml'), { platform: 'cpu' });
    expect(config.plugins.map((p) => p.options)).toEqual([{ colour: 'blue' }, {}]);
    const err = await fails(
      loadPlugins(
        config.plugins.map((p, i) => ({
          specifier: p.specifier,
          options: p.options,
          location: config.locations.at(`plugins.${i}`),
        })),
        dir,
      ),
    );
    expect(err.code).toBe('OMNI_PLUGIN_INVALID');
    expect(err.message).toContain('missing.mjs');
    expect(err.location).toMatchObject({ line: 4 });
  });

  it('rejects a module without a plugin export, a throwing factory, and an unknown package', async () => {
    expect((await fails(loadPlugins([{ specifier: './nothing.mjs' }], dir))).message).toContain(
      'does not export a plugin',
    );
    expect((await fails(loadPlugins([{ specifier: './throws.mjs' }], dir))).message).toContain('bad options');
    const pkg = await fails(loadPlugins([{ specifier: 'omnistage-plugin-that-does-not-exist' }], dir));
    expect(pkg.code).toBe('OMNI_PLUGIN_INVALID');
    expect(pkg.hint).toContain('npm install omnistage-plugin-that-does-not-exist');
  });
});

describe('Omnistage.use', () => {
  const plugin = (name: string, extra: object = {}) => ({ name, apply() {}, ...extra });

  it('refuses a plugin whose dependency was not applied before it', () => {
    expect(() => new Omnistage({ plugins: [plugin('b', { dependencies: ['a'] }), plugin('a')] })).toThrow(
      /depends on plugin "a"/,
    );
    expect(() => new Omnistage({ plugins: [plugin('a'), plugin('b', { dependencies: ['a'] })] })).not.toThrow();
  });

  it('refuses an incompatible or unparsable core version range, and a plugin applied twice', () => {
    const [major] = CORE_VERSION.split('.');
    expect(() => new Omnistage({ plugins: [plugin('old', { coreVersion: `^${Number(major) + 1}.0.0` })] })).toThrow(
      /needs @omnistage\/core/,
    );
    expect(() => new Omnistage({ plugins: [plugin('weird', { coreVersion: 'banana' })] })).toThrow(/not a valid range/);
    expect(() => new Omnistage({ plugins: [plugin('ok', { coreVersion: `>=${CORE_VERSION}` })] })).not.toThrow();
    expect(() => new Omnistage({ plugins: [plugin('twice'), plugin('twice')] })).toThrow(/applied twice/);
  });

  it('refuses plugins added after planning started', () => {
    const omni = new Omnistage();
    omni.seal();
    expect(() => omni.use(plugin('late'))).toThrow(/after planning started/);
  });
});

describe('satisfiesRange', () => {
  it.each([
    ['0.1.0', '^0.1.0', true],
    ['0.2.0', '^0.1.0', false],
    ['1.4.2', '^1.2.0', true],
    ['2.0.0', '^1.2.0', false],
    ['1.2.9', '~1.2.3', true],
    ['1.3.0', '~1.2.3', false],
    ['1.0.0', '>=0.1.0 <2.0.0', true],
    ['2.0.0', '>=0.1.0 <2.0.0', false],
    ['3.1.0', '^1.0.0 || ^3.0.0', true],
    ['0.1.0', '*', true],
    ['0.1.0', 'banana', null],
  ])('%s satisfies %s → %s', (version, range, expected) => {
    expect(satisfiesRange(version, range)).toBe(expected);
  });
});
