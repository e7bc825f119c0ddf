import type { Logger } from 'pino';
import type { EventBus, OmniEvent, InitPlan } from '@omnistage/core';
import { setRegion } from './tty-region.js';
import { replicaLabel } from '@omnistage/core/runtime';

interface Row {
  stage_id: number;
  replica_id: number;
  state: string;
  /** When the current state began (for the elapsed column). */
  since: number;
  /** A final state (ready, stopped, failed): its time is in the text, no clock runs. */
  settled: boolean;
  pid: number | null;
  restarts: number;
  devices: string;
}

/**
 * Live per-replica status. On a terminal: a fixed region of one row per replica (phase, elapsed
 * time, pid, restarts), redrawn in place every second and whenever a replica changes; log lines
 * are written above it (tty-region.ts). Off a terminal: one line per change, as plain text, or as
 * a JSON record when `--log-format json` (given a logger), so each stream carries one format.
 */
export class StatusDisplay {
  readonly #rows = new Map<string, Row>();
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #json: Logger | null;
  #drawnLines = 0;
  #footer: string | null = null;
  #off: () => void = () => {};
  #timer: NodeJS.Timeout | null = null;

  constructor(plan: InitPlan, options: { out?: NodeJS.WriteStream; json?: Logger | null } = {}) {
    this.#out = options.out ?? process.stderr;
    this.#json = options.json ?? null;
    this.#tty = this.#out.isTTY === true && this.#json === null;
    for (const s of plan.stages) {
      for (const r of s.replicas) {
        this.#rows.set(`${r.stage_id}/${r.replica_id}`, {
          stage_id: r.stage_id,
          replica_id: r.replica_id,
          state: 'planned',
          since: Date.now(),
          settled: false,
          pid: null,
          restarts: 0,
          devices: r.physical_devices.join(',') || '-',
        });
      }
    }
  }

  attach(bus: EventBus): void {
    this.#off = bus.onAny((e) => this.#onEvent(e));
    if (!this.#tty) return;
    setRegion({ erase: () => this.#erase(), draw: () => this.#draw() });
    this.#draw();
    this.#timer = setInterval(() => this.#redraw(), 1000);
    this.#timer.unref();
  }

  /** Stops updating; on a terminal the last state of every row stays on screen, below the logs. */
  detach(): void {
    this.#off();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#tty) {
      this.#redraw();
      setRegion(null);
      this.#drawnLines = 0;
    }
  }

  /** A line under the table (e.g. the URL `serve` listens on), kept there as the table redraws. */
  showLine(text: string): void {
    this.#footer = text;
    if (this.#tty) this.#redraw();
    else if (this.#json) this.#json.info(text);
    else this.#out.write(`${text}\n`);
  }

  #onEvent(e: OmniEvent): void {
    if (!('stage_id' in e) || !('replica_id' in e) || e.stage_id === undefined || e.replica_id === undefined) return;
    const row = this.#rows.get(`${e.stage_id}/${e.replica_id}`);
    if (!row) return;
    const next = stateOf(e);
    if (e.type === 'replica:spawned') row.pid = e.pid;
    if (e.type === 'replica:restart') row.restarts = e.attempt;
    if (next === null || next.state === row.state) return;
    row.state = next.state;
    row.settled = next.settled;
    row.since = Date.now();
    if (this.#tty) this.#redraw();
    else if (this.#json)
      this.#json.info(
        { stage: row.stage_id, replica: row.replica_id, ...(row.pid ? { pid: row.pid } : {}), event: e.type },
        `${replicaLabel(row)}: ${row.state}`,
      );
    else this.#out.write(`${replicaLabel(row)}: ${row.state}${row.pid ? ` (pid ${row.pid})` : ''}\n`);
  }

  #lines(): string[] {
    const now = Date.now();
    const lines = [...this.#rows.values()].map((r) => {
      const elapsed = r.settled ? '' : ` ${((now - r.since) / 1000).toFixed(0)}s`;
      return `  stage ${String(r.stage_id).padEnd(3)} replica ${String(r.replica_id).padEnd(3)} devices ${r.devices.padEnd(10)} pid ${String(r.pid ?? '-').padEnd(8)} restarts ${String(r.restarts).padEnd(3)} ${r.state}${elapsed}`;
    });
    if (this.#footer !== null) lines.push(this.#footer);
    return lines;
  }

  #erase(): void {
    // `\r` first: the terminal's own `^C` echo leaves the cursor mid-line.
    if (this.#drawnLines > 0) this.#out.write(`\r\x1b[${this.#drawnLines}A\x1b[0J`);
    this.#drawnLines = 0;
  }

  #draw(): void {
    const lines = this.#lines();
    this.#out.write(lines.map((l) => `\x1b[2K${l}\n`).join(''));
    this.#drawnLines = lines.length;
  }

  #redraw(): void {
    this.#erase();
    this.#draw();
  }
}

/** The row text an event sets, or null for events that do not change a replica's phase. */
function stateOf(e: OmniEvent): { state: string; settled: boolean } | null {
  const running = (state: string) => ({ state, settled: false });
  const settled = (state: string) => ({ state, settled: true });
  switch (e.type) {
    case 'replica:phase':
      if (e.status !== 'start') return null;
      return e.phase === 'lock'
        ? running('waiting for device locks')
        : e.phase === 'spawn'
          ? running('spawning')
          : e.phase === 'attach'
            ? running('attaching')
            : null;
    case 'lock:waiting': {
      const h = e.holder;
      return running(
        `waiting for device ${e.device}` +
          (h
            ? ` (locked by pid ${String(h['pid'])}, run ${String(h['run_id'])}, ${replicaLabel({ stage_id: Number(h['stage_id']), replica_id: Number(h['replica_id']) })})`
            : ''),
      );
    }
    case 'replica:queued':
      return running(`queued behind ${replicaLabel(e.behind)} (launch group ${e.group})`);
    case 'replica:window':
      return e.state === 'waiting'
        ? running('waiting for an exclusive init window')
        : e.state === 'start'
          ? running('profiling (exclusive window)')
          : running('attaching');
    case 'replica:unresponsive':
      return running(`unresponsive: ${e.reason}`);
    case 'replica:responsive':
      return settled('ready (answering again)');
    case 'replica:spawned':
      return running('attaching');
    case 'replica:ready':
      return settled(`ready (${e.duration_ms} ms)`);
    case 'replica:failed':
      return settled(e.code === 'OMNI_CANCELLED' ? `cancelled (in ${e.phase})` : `FAILED in ${e.phase}: ${e.code}`);
    case 'replica:exit':
      return settled(e.expected ? 'stopped' : `exited (${e.signal ?? `code ${e.code}`})`);
    case 'replica:restart':
      return running(`restarting (attempt ${e.attempt})`);
    default:
      return null;
  }
}
