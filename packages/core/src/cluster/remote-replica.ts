import type { ReplicaExit, ReplicaProcessHandle } from '../hooks/replica-handles.js';

/** How the head reaches a remote replica: its control channel, or, for an HTTP engine, nothing it must keep open. */
export interface RemoteLink {
  close(): void;
  readonly closed: Promise<unknown>;
}

/** The link of an HTTP engine on another host: nothing stays open between requests, so there is nothing to wait for. */
export const HTTP_LINK: RemoteLink = Object.freeze({ close: () => {}, closed: Promise.resolve() });

/**
 * The head's handle of a replica whose process runs on another host: it "exits" when the replica
 * leaves the pool (its connection closes, its lease expires, it is fenced). Stopping it asks it to
 * shut down over its connection and then closes the connection; its agent does the rest.
 */
export class RemoteReplicaProcess implements ReplicaProcessHandle {
  readonly exited: Promise<ReplicaExit>;
  #exit: ReplicaExit | null = null;
  #resolve!: (exit: ReplicaExit) => void;

  constructor(
    readonly pid: number,
    readonly hostId: string,
    readonly channel: RemoteLink,
  ) {
    this.exited = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** The replica left the pool: in-flight requests fail (and are retried elsewhere). */
  detach(): void {
    if (this.#exit !== null) return;
    this.#exit = { code: null, signal: null };
    this.channel.close();
    this.#resolve(this.#exit);
  }

  hasExited(): boolean {
    return this.#exit !== null;
  }

  lastLines(): string[] {
    return [`(the replica runs on host ${this.hostId}; its log is in its agent's output)`];
  }

  async stop(graceMs: number): Promise<ReplicaExit> {
    const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([this.channel.closed, timer]);
    this.detach();
    return this.exited;
  }
}
