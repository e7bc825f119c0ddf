/**
 * Process groups of replicas that are still running. execa's `cleanup` does nothing for
 * `detached` children, so on a normal orchestrator exit we TERM every live group ourselves
 * (parent-death signals cover abnormal exits where setpriv exists).
 */
const live = new Set<number>();
let hookInstalled = false;

export function trackGroup(pgid: number): void {
  live.add(pgid);
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', () => {
    for (const id of live) {
      try {
        process.kill(-id, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

export function untrackGroup(pgid: number): void {
  live.delete(pgid);
}
