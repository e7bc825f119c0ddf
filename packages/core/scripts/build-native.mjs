// Builds the optional shared-memory mapper (native/shm_map.c) into dist/native/shm_map.node, with
// the system C compiler against the Node-API headers already on the machine: no node-gyp, no
// download, well under a second. Run by `npm run build` after tsc, and by the package's `install`
// script where it is installed (the published package ships this source, never a binary).
//
// The addon is an optimisation (shm payload reads map the file instead of copying it), never a
// requirement: without a compiler or headers, or when compiling fails, this prints one line and
// exits 0, and readPayload uses read(). A stale addon from an earlier build is removed then.
//
//   node scripts/build-native.mjs            build (honours $CC and $npm_config_nodedir)
//   node scripts/build-native.mjs --probe    print what a build would use (exit 0) or why it cannot
//                                            (exit 1); build nothing
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
const source = join(pkg, 'native', 'shm_map.c');
const out = join(pkg, 'dist', 'native', 'shm_map.node');

/** The compiler command and header dir a build would use, or the reason there is none. */
function toolchain() {
  if (process.platform === 'win32') return { reason: 'not supported on Windows' };
  const cc = (process.env.CC ?? '').trim().split(/\s+/).filter(Boolean);
  if (cc.length === 0) cc.push('cc');
  const probe = spawnSync(cc[0], [...cc.slice(1), '--version'], { stdio: 'ignore', timeout: 10_000 });
  if (probe.error !== undefined || probe.status !== 0)
    return { reason: `no C compiler: \`${cc.join(' ')} --version\` failed` };
  const candidates = [
    process.env.npm_config_nodedir ? join(process.env.npm_config_nodedir, 'include', 'node') : undefined,
    join(dirname(dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
  ].filter((d) => d !== undefined);
  const include = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (include === undefined) return { reason: `no Node-API headers (node_api.h) in ${candidates.join(', ')}` };
  return { cc, include };
}

function build() {
  const tc = toolchain();
  if (tc.reason !== undefined) return tc.reason;
  mkdirSync(dirname(out), { recursive: true });
  // Written beside the target and renamed over it: a process that has the old one loaded keeps it.
  const tmp = `${out}.${process.pid}.tmp`;
  const flags = ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', `-I${tc.include}`];
  if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup'); // symbols come from node
  const res = spawnSync(tc.cc[0], [...tc.cc.slice(1), ...flags, '-o', tmp, source], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (res.error !== undefined || res.status !== 0) {
    rmSync(tmp, { force: true });
    const detail =
      res.error?.message ?? `${res.stderr ?? ''}`.split('\n').find((l) => /error/i.test(l)) ?? `exit ${res.status}`;
    return `${tc.cc.join(' ')} failed: ${detail.trim()}`;
  }
  renameSync(tmp, out);
  return undefined;
}

if (process.argv.includes('--probe')) {
  const tc = toolchain();
  console.log(tc.reason ?? `${tc.cc.join(' ')} -I${tc.include}`);
  if (tc.reason !== undefined) process.exitCode = 1;
} else {
  let reason;
  try {
    reason = build();
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  if (reason !== undefined) {
    rmSync(out, { force: true });
    console.log(`omnistage: native shared-memory mapper not built (${reason}); shm payload reads fall back to read()`);
  }
}
