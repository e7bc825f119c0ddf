// Shared-memory payload benchmark: the SharedMemoryConnector's path vs. a plain file copy.
//
//   node bench/shm.mjs [--sizes=1,64] [--reps=31,9] [--consumer=fresh|reused] [--verbose]
//   (build first: npx turbo run build)
//
// Prints, per payload size:
//   shm size=<1MiB|64MiB> ratio_vs_copy=<x>
//   shm_detail size=<..> consumer=<fresh|reused> read_path=<mmap|read> dir=<payload dir> shm_ms=<median> copy_ms=<median> shm_MiBps=<..> copy_MiBps=<..> reused_buffer_ms=<..> ratio_reused_buffer=<..>
//
// shm path (what moving a payload between two stages costs): the producer writes the bytes to
//   the payload store (`writePayload`: exclusive create in /dev/shm, write, close), the consumer
//   reads them back by key (`readPayload` without a buffer, as `conn.getPayload(ref)` does, size
//   checked), then touches every page of what it got (one byte per 4 KiB), so a mapped Buffer's
//   page faults count too. `read_path` says how that read gets the bytes: `mmap`, the consumer's
//   Buffer maps the file (the native addon, built with core), or `read`, a copy into a fresh
//   buffer (no addon, or OMNISTAGE_SHM_MAP=0). `reused_buffer_*`: the same, the consumer reading
//   into a staging buffer it reuses (`conn.getPayload(ref, into)`), always a read() copy.
// copy: `fs.copyFileSync` of a file holding the same bytes, from one file in os.tmpdir() to another.
// Deleting is outside the timed window on both sides and done after every sample: the copy's
//   destination is unlinked, the payload file deleted (`deletePayload`). In the product the
//   orchestrator deletes a payload file asynchronously after the consumer's payload_ack, off the
//   transfer path. Between samples the event loop turns once, as a worker's does between payloads,
//   so a collected mapped Buffer is unmapped (its pages freed) before the next sample, not inside it.
// ratio_vs_copy = shm throughput / copy throughput = copy median time / shm median time (>= 1:
//   the shm path is faster). It is the fresh-buffer figure (the default, --consumer=fresh), or with
//   --consumer=reused the reused-buffer one; the detail line always has both. Each sample is timed
//   alone; shm and copy alternate, the order flips every round, after one unmeasured warm-up of
//   each; medians are printed.
//
// Also importable: `runShmBench({ sizesMiB, reps })` returns the figures and prints nothing.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
// The store module alone (node built-ins only): no dependency to load.
const corePath = join(root, 'packages/core/dist/connectors/shm-store.js');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// One turn of the event loop: a mapped Buffer that was collected is unmapped in an immediate.
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Runs the benchmark; returns one result per size. */
export async function runShmBench({ sizesMiB = [1, 64], reps = [31, 9] } = {}) {
  if (!existsSync(corePath)) throw new Error(`missing ${corePath}: build first (npx turbo run build)`);
  const { writePayload, readPayload, deletePayload, payloadDir, payloadReadPath } = await import(pathToFileURL(corePath).href);
  const dir = payloadDir();
  const readPath = payloadReadPath();
  const runId = `bench-${process.pid}-${randomBytes(3).toString('hex')}`;
  const work = mkdtempSync(join(tmpdir(), 'omnistage-shm-bench-'));
  const results = [];
  let seq = 0;
  let touched = 0; // uses what the page-touching loop read, so it cannot be optimised away
  try {
    for (const [i, mib] of sizesMiB.entries()) {
      const size = mib * 1024 * 1024;
      const bytes = randomBytes(size);
      const src = join(work, `src-${mib}`);
      const dst = join(work, `dst-${mib}`);
      writeFileSync(src, bytes);

      const staging = Buffer.alloc(size); // a consumer's reused staging buffer (warm pages)
      const shmOnce = (reuse = false) => {
        const key = `bench_${seq++}`;
        const t0 = process.hrtime.bigint();
        writePayload(runId, key, bytes, dir);
        const back = readPayload(runId, key, reuse ? { size, dir, into: staging } : { size, dir });
        let sum = 0;
        for (let off = 0; off < size; off += 4096) sum += back[off];
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        touched += sum;
        deletePayload(runId, key, dir);
        if (back.byteLength !== size || back[size - 1] !== bytes[size - 1]) throw new Error('payload read back wrong');
        return ms;
      };
      const copyOnce = () => {
        const t0 = process.hrtime.bigint();
        copyFileSync(src, dst);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        unlinkSync(dst);
        return ms;
      };

      shmOnce();
      await turn();
      shmOnce(true);
      copyOnce();
      const shm = [];
      const reused = [];
      const copy = [];
      const n = reps[i] ?? reps[reps.length - 1] ?? 9;
      for (let r = 0; r < n; r++) {
        const round = [() => shm.push(shmOnce()), () => copy.push(copyOnce()), () => reused.push(shmOnce(true))];
        for (const run of r % 2 === 0 ? round : round.reverse()) {
          run();
          await turn();
        }
      }
      rmSync(src, { force: true });
      const shmMs = median(shm);
      const reusedMs = median(reused);
      const copyMs = median(copy);
      results.push({
        label: `${mib}MiB`,
        size,
        dir,
        read_path: readPath,
        shm_ms: shmMs,
        copy_ms: copyMs,
        shm_MiBps: mib / (shmMs / 1000),
        copy_MiBps: mib / (copyMs / 1000),
        ratio_vs_copy: copyMs / shmMs,
        reused_ms: reusedMs,
        ratio_reused_buffer: copyMs / reusedMs,
        runs: { shm, reused, copy },
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}

const isMain = process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url;
if (isMain) {
  const argv = Object.fromEntries(
    process.argv.slice(2).map((a) => {
      const [k, v] = a.replace(/^--/, '').split('=');
      return [k, v ?? 'true'];
    }),
  );
  const list = (v, d) => (v === undefined ? d : v.split(',').map(Number));
  try {
    const results = await runShmBench({ sizesMiB: list(argv.sizes, [1, 64]), reps: list(argv.reps, [31, 9]) });
    const f = (x) => x.toFixed(2);
    const reused = argv.consumer === 'reused';
    for (const r of results) {
      console.log(`shm size=${r.label} ratio_vs_copy=${f(reused ? r.ratio_reused_buffer : r.ratio_vs_copy)}`);
      console.log(
        `shm_detail size=${r.label} consumer=${reused ? 'reused' : 'fresh'} read_path=${r.read_path} dir=${r.dir} shm_ms=${f(r.shm_ms)} copy_ms=${f(r.copy_ms)} shm_MiBps=${Math.round(r.shm_MiBps)} copy_MiBps=${Math.round(r.copy_MiBps)} reused_buffer_ms=${f(r.reused_ms)} ratio_reused_buffer=${f(r.ratio_reused_buffer)}`,
      );
      if (argv.verbose) {
        console.log(`shm_runs size=${r.label} shm=[${r.runs.shm.map(f).join(',')}] reused=[${r.runs.reused.map(f).join(',')}] copy=[${r.runs.copy.map(f).join(',')}]`);
      }
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
