// Replica output through the CLI's logger with stderr a pipe (`omnistage … 2>&1 | cat`): how long
// 50 MiB of replica log lines take, the longest event-loop stall meanwhile, and lines dropped.
// Prints: logpipe mib=50 seconds=<x> max_stall_ms=<y> dropped=<n>
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIB = Number(process.env.LOGPIPE_MIB ?? 50);
const self = fileURLToPath(import.meta.url);

if (process.argv[2] === 'inner') {
  const { createCliLogger } = await import('../packages/cli/dist/logger.js');
  const { launchProcess } = await import('../packages/core/dist/launch/launch-process.js');
  const logger = createCliLogger('json', 'info').child({ stage: 0, replica: 0 });
  let maxStall = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    maxStall = Math.max(maxStall, now - last - 5);
    last = now;
  }, 5);
  const line = 'x'.repeat(99);
  const child = `const l='${line}\\n'.repeat(1024);let n=${MIB}*1024*1024/(100*1024);const go=()=>{while(n>0){n--;if(!process.stdout.write(l))return process.stdout.once('drain',go)}};go()`;
  const started = performance.now();
  const proc = launchProcess({
    command: process.execPath,
    args: ['-e', child],
    env: process.env,
    onLine: (stream, l) => logger.info({ stream }, l),
  });
  await proc.exited;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(tick);
  const dropped = typeof logger.droppedLines === 'function' ? logger.droppedLines() : 0;
  process.stdout.write(JSON.stringify({ seconds, maxStall, dropped }) + '\n');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'omni-logpipe-'));
const result = join(dir, 'result.json');
await new Promise((resolve, reject) => {
  const sh = spawn('sh', ['-c', `"${process.execPath}" "${self}" inner 2>&1 >"${result}" | cat >/dev/null`], {
    stdio: 'inherit',
  });
  sh.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`logpipe bench exited ${code}`))));
});
const r = JSON.parse(readFileSync(result, 'utf8'));
rmSync(dir, { recursive: true, force: true });
console.log(
  `logpipe mib=${MIB} seconds=${r.seconds.toFixed(2)} max_stall_ms=${Math.round(r.maxStall)} dropped=${r.dropped}`,
);
