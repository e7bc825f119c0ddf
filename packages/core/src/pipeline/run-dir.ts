import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toOmniError } from '../errors.js';
import { ControlServer } from '../control/server.js';
import { payloadDir } from '../connectors/shm-store.js';
import { RUN_DIR_PREFIX, reapStaleRuns, writeRunOwner } from '../orchestrate/stale-runs.js';
import type { RunServices } from '../orchestrate/run-services.js';

/** A run's private directory and the control server listening in it. */
export interface OpenedRun {
  readonly runDir: string;
  readonly control: ControlServer;
}

/** Removes what orchestrators that died without teardown left in this host's temp dir and /dev/shm. */
async function reapStaleRunsOfHost(services: RunServices, ownRunDir: string): Promise<void> {
  for (const r of await reapStaleRuns({ except: ownRunDir })) {
    if (r.run_id === null || r.pid === null) {
      services.logger.warn(
        { code: 'OMNI_WARN_STALE_RUN_REAPED', run_dir: r.run_dir },
        `removed ${r.run_dir}: its omnistage was killed before it recorded its owner`,
      );
      continue;
    }
    services.logger.warn(
      { code: 'OMNI_WARN_STALE_RUN_REAPED', stale_run_id: r.run_id, pid: r.pid, payload_files: r.payload_files },
      `removed the leftovers of run ${r.run_id} (its omnistage, pid ${r.pid}, died without tearing down): its run directory and ${r.payload_files} payload file(s)`,
    );
    services.events.emit({ type: 'run:reaped', stale_run_id: r.run_id, pid: r.pid, payload_files: r.payload_files });
  }
}

/**
 * Creates the run's directory with its owner record (so a later run can reap it if this one dies
 * without teardown), reaps dead runs' leftovers, and starts the control server in it.
 */
export async function openRun(services: RunServices, runId: string): Promise<OpenedRun> {
  const runDir = await mkdtemp(join(tmpdir(), RUN_DIR_PREFIX));
  try {
    await writeRunOwner(runDir, { run_id: runId, payload_dir: payloadDir() });
    await reapStaleRunsOfHost(services, runDir);
    return {
      runDir,
      control: await ControlServer.listen(join(runDir, 'control.sock'), {
        run_id: runId,
        warn: (m) => services.logger.warn({ code: 'OMNI_WARN_CONTROL_REJECTED' }, m),
      }),
    };
  } catch (err) {
    await rm(runDir, { recursive: true, force: true });
    throw toOmniError(err, 'OMNI_INTERNAL');
  }
}
