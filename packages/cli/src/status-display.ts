import type { EventBus, OmniEvent, InitPlan } from '@omnistage/core';

interface Row {
  stage_id: number;
  replica_id: number;
  state: string;
  pid: number | null;
  devices: string;
}

/**
 * Live per-replica status while a pipeline starts. On a TTY it redraws one table in place; on a
 * pipe or file it prints one line per change, so logs and CI output stay readable.
 */
export class StatusDisplay {
  readonly #rows = new Map<string, Row>();
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #drawnLines = 0;
  #footer: string | null = null;
  #off: () => void = () => {};

  constructor(plan: InitPlan, out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
    this.#tty = out.isTTY === true;
    for (const s of plan.stages) {
      for (const r of s.replicas) {
        this.#rows.set(`${r.stage_id}/${r.replica_id}`, {
          stage_id: r.stage_id,
          replica_id: r.replica_id,
          state: 'planned',
          pid: null,
          devices: r.physical_devices.join(',') || '-',
        });
      }
    }
  }

  attach(bus: EventBus): void {
    this.#off = bus.onAny((e) => this.#onEvent(e));
    if (this.#tty) this.#draw();
  }

  detach(): void {
    this.#off();
  }

  /** A line under the table (e.g. the URL `serve` listens on), kept there as the table redraws. */
  showLine(text: string): void {
    this.#footer = text;
    if (this.#tty) this.#draw();
    else this.#out.write(`${text}\n`);
  }

  #onEvent(e: OmniEvent): void {
    if (!('stage_id' in e) || !('replica_id' in e) || e.stage_id === undefined || e.replica_id === undefined) return;
    const row = this.#rows.get(`${e.stage_id}/${e.replica_id}`);
    if (!row) return;
    let state: string | null = null;
    if (e.type === 'replica:phase' && e.status === 'start' && ['lock', 'spawn', 'attach'].includes(e.phase)) {
      state = e.phase === 'lock' ? 'waiting for device locks' : e.phase === 'spawn' ? 'spawning' : 'attaching';
    } else if (e.type === 'lock:waiting') {
      const h = e.holder;
      state =
        `waiting for device ${e.device}` +
        (h ? ` (locked by pid ${String(h['pid'])}, run ${String(h['run_id'])}, stage ${String(h['stage_id'])} replica ${String(h['replica_id'])})` : '');
    }
    else if (e.type === 'replica:spawned') {
      row.pid = e.pid;
      state = 'attaching';
    } else if (e.type === 'replica:ready') state = `ready (${e.duration_ms} ms)`;
    else if (e.type === 'replica:failed') state = e.code === 'OMNI_CANCELLED' ? `cancelled (in ${e.phase})` : `FAILED in ${e.phase}: ${e.code}`;
    else if (e.type === 'replica:exit') state = e.expected ? 'stopped' : `exited (${e.signal ?? `code ${e.code}`})`;
    else if (e.type === 'replica:restart') state = `restarting (attempt ${e.attempt})`;
    if (state === null || state === row.state) return;
    row.state = state;
    if (this.#tty) this.#draw();
    else this.#out.write(`stage ${row.stage_id} replica ${row.replica_id}: ${state}${row.pid ? ` (pid ${row.pid})` : ''}\n`);
  }

  #draw(): void {
    const lines = [...this.#rows.values()].map(
      (r) => `  stage ${String(r.stage_id).padEnd(3)} replica ${String(r.replica_id).padEnd(3)} devices ${r.devices.padEnd(10)} pid ${String(r.pid ?? '-').padEnd(8)} ${r.state}`,
    );
    if (this.#footer !== null) lines.push(this.#footer);
    if (this.#drawnLines > 0) this.#out.write(`\x1b[${this.#drawnLines}A`);
    for (const l of lines) this.#out.write(`\x1b[2K${l}\n`);
    this.#drawnLines = lines.length;
  }
}
