/**
 * Tests that act as another user (nobody, through setpriv) run fixtures that user must be able to
 * read. A clone inside a directory other users cannot enter (under /root, mode 0700) is not, and
 * node then fails with "Cannot find module …/lock-holder.mjs". So those tests run a copy: the
 * fixture, the built modules it imports (relative imports, followed) and the npm packages they
 * need (with their dependencies), laid out as in the package, in a temp dir every user can read.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { CORE_DIR, tempDir } from './helpers.js';

/** The user the tests act as. */
export const OTHER_UID = 65534;

/** Why this machine cannot run a process as {@link OTHER_UID} (undefined: it can). */
export function cannotSwitchUser(): string | undefined {
  if (process.getuid?.() !== 0) return 'acting as another user needs root (CI runs as root)';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'setpriv (util-linux) is not installed';
  return undefined;
}

/** The argv prefix that runs a command as {@link OTHER_UID}. */
export const AS_OTHER_USER = ['setpriv', `--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', '--'];

const IMPORT_RE = /(?:\bfrom|\bimport)\s*\(?\s*['"]([^'"]+)['"]/g;

/**
 * Copies `fixtures` (paths relative to packages/core) and everything they import into a fresh temp
 * dir that every user may read; returns the copy's packages/core equivalent.
 */
export async function copyForOtherUser(fixtures: readonly string[]): Promise<string> {
  const root = await tempDir();
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT_RE)) {
      if (spec!.startsWith('.')) visit(resolve(dirname(file), spec!));
      else if (!spec!.startsWith('node:')) addPackage(packageName(spec!), CORE_DIR, packages);
    }
  };
  for (const f of fixtures) visit(join(CORE_DIR, f));
  for (const file of files) copyInto(root, relative(CORE_DIR, file), file);
  for (const dir of packages) copyInto(root, join('node_modules', relative(packagesRoot(dir), dir)), dir);
  // Readable whatever the clone's umask was (the copies keep their modes).
  const chmod = spawnSync('chmod', ['-R', 'a+rX', root]);
  if (chmod.status !== 0) throw new Error(`chmod -R a+rX ${root} failed: ${String(chmod.stderr)}`);
  return root;
}

function copyInto(root: string, to: string, from: string): void {
  mkdirSync(dirname(join(root, to)), { recursive: true });
  cpSync(from, join(root, to), { recursive: true, dereference: true });
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** The folder a package dir sits in (`…/node_modules`), so its name keeps its scope. */
function packagesRoot(dir: string): string {
  let d = dirname(dir);
  while (!d.endsWith('node_modules')) d = dirname(d);
  return d;
}

/** Adds the package as node finds it from `from`, and its dependencies, to `out` (package dirs). */
function addPackage(name: string, from: string, out: Set<string>): void {
  let dir = from;
  while (!existsSync(join(dir, 'node_modules', name, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error(`${name} (imported by a fixture) is not installed above ${from}`);
    dir = dirname(dir);
  }
  dir = join(dir, 'node_modules', name);
  const manifest = join(dir, 'package.json');
  if (out.has(dir)) return;
  out.add(dir);
  const deps = (JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string> }).dependencies;
  for (const dep of Object.keys(deps ?? {})) addPackage(dep, dir, out);
}
