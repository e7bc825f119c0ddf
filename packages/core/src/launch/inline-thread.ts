import { Worker } from 'node:worker_threads';
import type { ReplicaExit, ReplicaProcessHandle } from '../hooks/replica-handles.js';
import { CappedLineSplitter, MAX_CHILD_LINE_BYTES } from './capped-lines.js';
import { LastLines } from './last-lines.js';

/**
 * Runs a worker module in a thread of the orchestrator (inline mode: upstream `initialize_diffusion_stage(use_inline=True)`). The module is the
 * same script a replica process would run: it gets the replica's env as its own `process.env` and
 * attaches over the control socket, so the rest of omnistage cannot tell the difference. `pid` is
 * the orchestrator's. Stopping terminates the thread; grace does not apply.
 */
export function launchInlineThread(
  modulePath: string,
  env: Record<string, string | undefined>,
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void,
): ReplicaProcessHandle {
  const lines = new LastLines(50);
  const worker = new Worker(modulePath, { env, stdout: true, stderr: true });
  const pipe = (stream: 'stdout' | 'stderr', readable: NodeJS.ReadableStream): void => {
    const splitter = new CappedLineSplitter();
    readable.on('data', (chunk: Buffer | string) => {
      for (const { line, droppedBytes } of splitter.push(Buffer.from(chunk))) {
        const shown =
          droppedBytes > 0
            ? `${line}… [${droppedBytes} more bytes dropped: lines are cut at ${MAX_CHILD_LINE_BYTES} bytes]`
            : line;
        lines.push(shown);
        onLine?.(stream, shown);
      }
    });
  };
  pipe('stdout', worker.stdout);
  pipe('stderr', worker.stderr);
  let status: ReplicaExit | null = null;
  const exited = new Promise<ReplicaExit>((resolve) => {
    worker.once('error', (err) => lines.push(`inline engine error: ${err.message}`));
    worker.once('exit', (code) => {
      status = { code, signal: null };
      resolve(status);
    });
  });
  return {
    pid: process.pid,
    exited,
    hasExited: () => status !== null,
    lastLines: () => lines.snapshot(),
    stop: async () => {
      if (status === null) await worker.terminate();
      return exited;
    },
  };
}
