/**
 * The one place omnistage acts on its own process's `exit`. Node runs only synchronous code there,
 * and a throwing `exit` listener skips the listeners after it, so every piece of last-moment
 * cleanup (terminating live replica groups, removing lock holder files, sweeping payload files)
 * goes through this registry: one listener, tasks in registration order, each isolated from the
 * others' failures.
 */
const tasks = new Set<() => void>();
let installed = false;

function runExitTasks(): void {
  for (const task of tasks) {
    try {
      task();
    } catch {
      // best effort: the process is going away, and one failed cleanup must not skip the rest
    }
  }
  tasks.clear();
}

/**
 * Runs `task` (synchronous, best effort) when this process exits normally. Returns the function
 * that withdraws it, to call once what it cleans up is gone. Abnormal exits (SIGKILL) are covered
 * elsewhere: parent-death signals for replicas, staleness for locks, the run reaper for files.
 */
export function atProcessExit(task: () => void): () => void {
  if (!installed) {
    installed = true;
    process.once('exit', runExitTasks);
  }
  const entry = (): void => task();
  tasks.add(entry);
  return () => {
    tasks.delete(entry);
  };
}
