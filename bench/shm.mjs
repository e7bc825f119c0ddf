// Shared-memory payload benchmark: the SharedMemoryConnector's path vs. a plain file copy.
//
//   node bench/shm.mjs [--sizes=1,64] [--reps=31,9] [--consumer=fresh|reused] [--verbose]
//   (build first: npx turbo run build)
//
// Prints, per payload size:
//   shm size=<1MiB|64MiB> ratio_vs_copy=<x>                 the pooled path, warm (the product's default)
//   shm_unpooled size=<1MiB|64MiB> ratio_vs_copy=<x>        a fresh file per payload (pool_bytes: 0)
//   shm_detail size=<..> consumer=<fresh|reused> read_path=<mmap|read> dir=<payload dir> shm_ms=<median> pooled=<k/n> unpooled_ms=<median> copy_ms=<median> shm_MiBps=<..> copy_MiBps=<..> reused_buffer_ms=<..> ratio_reused_buffer=<..>
//
// shm path (what moving a payload between two stages costs), through the built-in connector a
//   replica uses (dist/connectors/shm-connector.js, worker role): the producer's `put` (pooled:
//   a memcpy into a segment of its pool, then a link named by the key; unpooled: exclusive create
//   of a file, write, close), the consumer's `get` (readPayload by key, as `conn.getPayload(ref)`
//   does, size checked; a pooled segment locked shared), then the consumer touches every page of
//   what it got (one byte per 4 KiB), so a mapped Buffer's page faults count too. `read_path` says
//   how that read gets the bytes: `mmap`, the consumer's Buffer maps the file (the native addon,
//   built with core), or `read`, a copy into a fresh buffer (no addon, or OMNISTAGE_SHM_MAP=0).
//   `pooled=k/n`: how many of the n timed pooled samples found a segment to reuse (the rest fell
//   back to a file of their own: a consumer Buffer not yet collected still held the segment).
//   `reused_buffer_*`: the pooled path, the consumer reading into a staging buffer it reuses
//   (`conn.getPayload(ref, into)`), always a read() copy.
// copy: `fs.copyFileSync` of a file holding the same bytes, from one file in os.tmpdir() to another.
// Freeing is outside the timed window on both sides and done after every sample: the copy's
//   destination is unlinked, the payload released as the orchestrator does after the consumer's
//   payload_ack (`release`: the key unlinked; a segment returns to the pool, a file is freed), off
//   the transfer path. Between samples the event loop turns once, as a worker's does between
//   payloads, so a collected mapped Buffer is unmapped (its pages, and its segment lock, released)
//   before the next sample, not inside it. The pool is warmed by five unmeasured samples per size.
// ratio_vs_copy = shm throughput / copy throughput = copy median time / shm median time (>= 1:
//   the shm path is faster). It is the fresh-buffer figure (the default, --consumer=fresh), or with
//   --consumer=reused the reused-buffer one; the detail line always has both. Each sample is timed
//   alone; the paths alternate, the order flips every round, after one unmeasured warm-up of
//   each; medians are printed.
//
// Also importable: `runShmBench({ sizesMiB, reps })` returns the figures and prints nothing.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
// The connector and store modules alone (node built-ins only): no dependency to load.
const dist = join(root, 'packages/core/dist/connectors');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// One turn of the event loop: a mapped Buffer that was collected is unmapped in an immediate.
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** The producer's and consumer's connectors of one run, pooled or not, in a private run directory. */
async function connectors(runId, poolBytes) {
  const { ShmConnector } = await import(pathToFileURL(join(dist, 'shm-connector.js')).href);
  const { createRunPayloadDir, payloadDir } = await import(pathToFileURL(join(dist, 'shm-store.js')).href);
  const dir = createRunPayloadDir(runId, payloadDir());
  const pool = { poolBytes, maxSegmentBytes: 64 * 1024 * 1024, tag: 'bench' };
  const producer = new ShmConnector({ runId, role: 'worker' }, { dir, thresholdBytes: 0, pool });
  const consumer = new ShmConnector({ runId, role: 'worker' }, { dir });
  return { dir, producer, consumer };
}

/** Runs the benchmark; returns one result per size. */
export async function runShmBench({ sizesMiB = [1, 64], reps = [31, 9] } = {}) {
  if (!existsSync(join(dist, 'shm-connector.js')))
    throw new Error(`missing ${dist}/shm-connector.js: build first (npx turbo run build)`);
  const { payloadReadPath } = await import(pathToFileURL(join(dist, 'shm-store.js')).href);
  const readPath = payloadReadPath();
  const runId = `bench-${process.pid}-${randomBytes(3).toString('hex')}`;
  const pooledRun = await connectors(runId, 256 * 1024 * 1024);
  const unpooledRun = await connectors(`${runId}-u`, 0);
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
      const shmOnce = async ({ producer, consumer }, reuse = false) => {
        const key = `bench_${seq++}`;
        const t0 = process.hrtime.bigint();
        const ref = producer.put(bytes, { key, meta: {} });
        const back = consumer.get(ref, reuse ? staging : undefined);
        let sum = 0;
        for (let off = 0; off < size; off += 4096) sum += back[off];
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        touched += sum;
        if (back.byteLength !== size || back[size - 1] !== bytes[size - 1]) throw new Error('payload read back wrong');
        await producer.release(ref);
        return { ms, pooled: ref.segment_bytes !== undefined };
      };
      const copyOnce = () => {
        const t0 = process.hrtime.bigint();
        copyFileSync(src, dst);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        unlinkSync(dst);
        return { ms };
      };

      // Warm: the pool creates its segments (up to 4 of 64 MiB) and their pages once.
      const warmPool = Array.from({ length: 5 }, () => () => shmOnce(pooledRun));
      for (const warm of [...warmPool, () => shmOnce(pooledRun, true), () => shmOnce(unpooledRun), copyOnce]) {
        await warm();
        await turn();
      }
      const runs = { shm: [], reused: [], unpooled: [], copy: [] };
      let pooled = 0;
      const n = reps[i] ?? reps[reps.length - 1] ?? 9;
      for (let r = 0; r < n; r++) {
        const round = [
          async () => {
            const s = await shmOnce(pooledRun);
            runs.shm.push(s.ms);
            pooled += s.pooled ? 1 : 0;
          },
          async () => runs.copy.push(copyOnce().ms),
          async () => runs.reused.push((await shmOnce(pooledRun, true)).ms),
          async () => runs.unpooled.push((await shmOnce(unpooledRun)).ms),
        ];
        for (const run of r % 2 === 0 ? round : round.reverse()) {
          await run();
          await turn();
        }
      }
      rmSync(src, { force: true });
      const [shmMs, reusedMs, unpooledMs, copyMs] = [runs.shm, runs.reused, runs.unpooled, runs.copy].map(median);
      results.push({
        label: `${mib}MiB`,
        size,
        dir: pooledRun.dir,
        read_path: readPath,
        shm_ms: shmMs,
        pooled: `${pooled}/${n}`,
        unpooled_ms: unpooledMs,
        copy_ms: copyMs,
        shm_MiBps: mib / (shmMs / 1000),
        copy_MiBps: mib / (copyMs / 1000),
        ratio_vs_copy: copyMs / shmMs,
        ratio_unpooled: copyMs / unpooledMs,
        reused_ms: reusedMs,
        ratio_reused_buffer: copyMs / reusedMs,
        runs,
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    for (const run of [pooledRun, unpooledRun]) {
      run.producer.close();
      rmSync(run.dir, { recursive: true, force: true });
    }
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
      console.log(`shm_unpooled size=${r.label} ratio_vs_copy=${f(r.ratio_unpooled)}`);
      console.log(
        `shm_detail size=${r.label} consumer=${reused ? 'reused' : 'fresh'} read_path=${r.read_path} dir=${r.dir} shm_ms=${f(r.shm_ms)} pooled=${r.pooled} unpooled_ms=${f(r.unpooled_ms)} copy_ms=${f(r.copy_ms)} shm_MiBps=${Math.round(r.shm_MiBps)} copy_MiBps=${Math.round(r.copy_MiBps)} reused_buffer_ms=${f(r.reused_ms)} ratio_reused_buffer=${f(r.ratio_reused_buffer)}`,
      );
      if (argv.verbose) {
        const list = (xs) => `[${xs.map(f).join(',')}]`;
        console.log(
          `shm_runs size=${r.label} shm=${list(r.runs.shm)} reused=${list(r.runs.reused)} unpooled=${list(r.runs.unpooled)} copy=${list(r.runs.copy)}`,
        );
      }
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
