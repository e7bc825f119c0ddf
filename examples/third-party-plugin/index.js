// omnistage-plugin-timeline: observes lifecycle events only (no hooks), and when the pipeline stops
// writes one self-contained HTML page: an SVG with a row per replica (its devices and launch group,
// its waits, lock, spawn, attach and init windows on a time axis) and the same data as a table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** What each kind of bar means, in drawing order (later bars are drawn over earlier ones). */
const KINDS = {
  group: { color: '#9e9e9e', label: 'waiting for its launch group' },
  lock: { color: '#f0b45a', label: 'lock phase' },
  locks: { color: '#8c3b0c', label: 'waiting for a device lock' },
  spawn: { color: '#4c78a8', label: 'spawn' },
  attach: { color: '#54a24b', label: 'attach' },
  window: { color: '#b2182b', label: 'exclusive init window' },
};
/** One colour per launch group (cycled), used for the row band and the group's legend swatch. */
const GROUP_COLORS = ['#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#d95f02', '#1f78b4'];
/** The events the timeline is built from; the plugin keeps nothing else. */
const USED = new Set([
  'pipeline:planned',
  'replica:queued',
  'replica:phase',
  'replica:window',
  'lock:waiting',
  'lock:acquired',
  'replica:ready',
  'replica:failed',
]);

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const who = (r) => `stage ${r.stage_id} replica ${r.replica_id}`;
const ms = (t) => `${Math.round(t)} ms`;

/**
 * The time axis for a span of `spanMs`: a step of 1, 2 or 5 × 10^k ms chosen so that about `target`
 * steps cover the span (never fewer than 3), ticks from 0 to the first multiple of the step at or past
 * the span, labelled in ms, or in s once the axis reaches a second.
 */
export function axisTicks(spanMs, target = 6) {
  const span = Number.isFinite(spanMs) && spanMs > 0 ? spanMs : 1;
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].find((m) => m * mag >= raw * (1 - 1e-9)) * mag;
  const count = Math.max(1, Math.ceil(span / step - 1e-9));
  const seconds = count * step >= 1000;
  const unitStep = seconds ? step / 1000 : step;
  const decimals = Math.max(0, -Math.floor(Math.log10(unitStep) + 1e-9));
  const ticks = Array.from({ length: count + 1 }, (_, i) => {
    const at = i * step;
    return { ms: at, label: `${Number((seconds ? at / 1000 : at).toFixed(decimals))} ${seconds ? 's' : 'ms'}` };
  });
  return { step, end: count * step, ticks };
}

/** Who held a lock, as `lock:waiting` named them (a replica of this run or of another run), in the order they held it. */
function describeHolders(holders, runId) {
  if (holders.length === 0) return 'an unknown holder';
  const one = (h) => {
    const replica = `stage ${h.stage_id} replica ${h.replica_id}`;
    return h.run_id === runId
      ? `${replica} of this run`
      : `${replica} of run ${h.run_id} (pid ${h.pid}${h.host ? ` on ${h.host}` : ''})`;
  };
  return holders.map(one).join(', then ');
}

/** The sentence that says why a row started late, or that it did not. */
function whyLate(row, runId) {
  const reasons = row.waits.map((w) =>
    w.kind === 'group'
      ? `waited ${ms(w.end - w.start)} for launch group ${w.group}: ${who(w.behind)} had to be ready first`
      : `waited ${ms(w.end - w.start)} for the lock on device ${w.device}, held by ${describeHolders(w.holders, runId)}`,
  );
  return reasons.length > 0 ? reasons.join('; ') : 'started at once';
}

/**
 * Reduces a run's events (in order) to one row per replica: where it runs (from `pipeline:planned`),
 * its bars (ms since the bring-up start, i.e. `pipeline:planned`), what it waited for and when it
 * was ready. Rows come in launch-group order, plan order within a group.
 */
export function timelineModel(events) {
  const t0 = (events.find((e) => e.type === 'pipeline:planned') ?? events[0])?.ts ?? 0;
  const last = Math.max(t0, ...events.map((e) => e.ts)) - t0;
  const runId = events[0]?.run_id ?? '';
  const rows = new Map();
  const row = (e) => {
    const key = `${e.stage_id}/${e.replica_id}`;
    if (!rows.has(key))
      rows.set(key, {
        stage_id: e.stage_id,
        replica_id: e.replica_id,
        devices: null,
        physical_devices: [],
        group: null,
        bars: [],
        waits: [],
        started: null,
        ready: null,
        failed: null,
      });
    return rows.get(key);
  };
  const open = new Map();
  const begin = (r, item) => {
    open.set(`${r.stage_id}/${r.replica_id}/${item.kind}/${item.device ?? ''}`, item);
    return item;
  };
  const close = (r, kind, t, device = '') => {
    const k = `${r.stage_id}/${r.replica_id}/${kind}/${device}`;
    const item = open.get(k);
    if (!item) return;
    open.delete(k);
    item.end = t;
    (kind === 'group' || kind === 'locks' ? r.waits : r.bars).push(item);
  };
  for (const e of events) {
    const t = e.ts - t0;
    if (e.type === 'pipeline:planned')
      for (const p of e.placement ?? [])
        Object.assign(row(p), { devices: p.devices, physical_devices: p.physical_devices, group: p.group });
    else if (e.type === 'replica:queued') begin(row(e), { kind: 'group', group: e.group, behind: e.behind, start: t });
    else if (e.type === 'lock:waiting') {
      // Told again when the holder changes (or its holder file became readable): one wait, every holder named.
      const wait =
        open.get(`${e.stage_id}/${e.replica_id}/locks/${e.device}`) ??
        begin(row(e), { kind: 'locks', device: e.device, holders: [], start: t });
      if (e.holder && !wait.holders.some((h) => JSON.stringify(h) === JSON.stringify(e.holder)))
        wait.holders.push(e.holder);
    } else if (e.type === 'lock:acquired') close(row(e), 'locks', t, e.device);
    else if (e.type === 'replica:window' && e.state !== 'waiting')
      e.state === 'start' ? begin(row(e), { kind: 'window', start: t }) : close(row(e), 'window', t);
    else if (e.type === 'replica:phase' && ['lock', 'spawn', 'attach'].includes(e.phase)) {
      const r = row(e);
      if (e.status === 'start') {
        if (e.phase === 'lock') {
          r.started ??= t;
          close(r, 'group', t);
        }
        begin(r, { kind: e.phase, start: t });
      } else {
        close(r, e.phase, t);
        if (e.phase === 'lock')
          for (const k of [...open.keys()].filter((k) => k.startsWith(`${e.stage_id}/${e.replica_id}/locks/`)))
            close(r, 'locks', t, k.split('/')[3]);
      }
    } else if (e.type === 'replica:ready') row(e).ready ??= t;
    else if (e.type === 'replica:failed') row(e).failed ??= e.code;
  }
  // A run that failed leaves bars open: they end with the last event.
  for (const [k, item] of [...open])
    close(rows.get(k.split('/').slice(0, 2).join('/')), item.kind, last, item.device ?? '');
  const planOrder = [...rows.values()];
  const order = (r) => (r.group === null ? Infinity : r.group);
  const list = planOrder.toSorted((a, b) => order(a) - order(b) || planOrder.indexOf(a) - planOrder.indexOf(b));
  for (const r of list) r.why = whyLate(r, runId);
  const end = Math.max(last, ...list.flatMap((r) => [...r.bars, ...r.waits].map((b) => b.end)));
  return { runId, end, rows: list };
}

const devicesText = (r) =>
  `${r.devices ?? 'all visible'} → ${r.physical_devices.length > 0 ? r.physical_devices.join(',') : 'all visible'}`;
const groupText = (r) => (r.group === null ? 'no launch group' : `launch group ${r.group}`);
const groupColor = (g) => (g === null ? '#cccccc' : GROUP_COLORS[g % GROUP_COLORS.length]);
const bar = (x, y, w, h, kind, text) =>
  `<rect class="bar ${kind}" x="${x.toFixed(1)}" y="${y}" width="${Math.max(1, w).toFixed(1)}" height="${h}" fill="${KINDS[kind].color}"><title>${escape(text)}</title></rect>`;

/** The SVG: axis with ticks on top, one labelled row per replica in a band of its group's colour, legends below. */
function renderSvg(model) {
  const left = 280;
  const plotW = 720;
  const groups = [...new Set(model.rows.map((r) => r.group))];
  const groupLegend = (g) => {
    const inGroup = model.rows.filter((r) => r.group === g);
    const members = inGroup.map(who).join(', ');
    if (g === null) return `no launch group: ${members}`;
    return inGroup.length > 1
      ? `launch group ${g}: ${members} (started one after another)`
      : `launch group ${g}: ${members}`;
  };
  // Long sentences widen the picture rather than run off it (about 6.6 px a character at 12 px).
  const longest = (texts) => Math.max(0, ...texts.map((t) => t.length)) * 6.6;
  const width = Math.ceil(
    Math.max(
      left + plotW + 30,
      left + 30 + longest(model.rows.map((r) => `late: ${r.why}`)),
      50 + longest(groups.map(groupLegend)),
    ),
  );
  const rowH = 58;
  const top = 50;
  const axis = axisTicks(model.end);
  const x = (t) => left + (t * plotW) / axis.end;
  const bottom = top + model.rows.length * rowH;
  const ticks = axis.ticks
    .map(
      (t) =>
        `<g class="tick"><line x1="${x(t.ms).toFixed(1)}" y1="${top - 6}" x2="${x(t.ms).toFixed(1)}" y2="${bottom}" stroke="#d0d0d0"/><text x="${x(t.ms).toFixed(1)}" y="${top - 10}" text-anchor="middle" font-size="12">${escape(t.label)}</text></g>`,
    )
    .join('');
  const rows = model.rows
    .map((r, i) => {
      const y = top + i * rowH;
      const bars = [...r.waits, ...r.bars]
        .sort((a, b) => Object.keys(KINDS).indexOf(a.kind) - Object.keys(KINDS).indexOf(b.kind))
        .map((b) => {
          const thin = b.kind === 'window' || b.kind === 'locks';
          return bar(
            x(b.start),
            y + (thin ? 12 : 6),
            x(b.end) - x(b.start),
            thin ? 12 : 24,
            b.kind,
            `${KINDS[b.kind].label}: ${ms(b.end - b.start)} (from ${ms(b.start)})`,
          );
        })
        .join('');
      const late = r.waits.length > 0;
      return `<g class="row" data-stage="${r.stage_id}" data-replica="${r.replica_id}" data-group="${r.group ?? ''}">
<rect x="0" y="${y}" width="${width}" height="${rowH}" fill="${groupColor(r.group)}" fill-opacity="0.10"/><rect x="0" y="${y}" width="6" height="${rowH}" fill="${groupColor(r.group)}"/>
<text class="label" x="14" y="${y + 18}" font-size="13" font-weight="bold">${escape(who(r))}</text>
<text class="devices" x="14" y="${y + 34}" font-size="12">devices ${escape(devicesText(r))}</text>
<text class="group" x="14" y="${y + 49}" font-size="12">${escape(groupText(r))}</text>
${bars}
<text class="why" x="${left}" y="${y + 48}" font-size="12" fill="${late ? '#8c3b0c' : '#555555'}">${escape(late ? `late: ${r.why}` : r.why)}</text></g>`;
    })
    .join('\n');
  const kinds = Object.values(KINDS).map(
    (k, i) =>
      `<g class="key"><rect x="${14 + (i % 3) * 320}" y="${bottom + 16 + Math.floor(i / 3) * 20}" width="12" height="12" fill="${k.color}"/><text x="${32 + (i % 3) * 320}" y="${bottom + 26 + Math.floor(i / 3) * 20}" font-size="12">${escape(k.label)}</text></g>`,
  );
  const groupKeys = groups.map((g, i) => {
    const y = bottom + 72 + i * 20;
    return `<g class="group-key" data-group="${g ?? ''}"><rect x="14" y="${y - 10}" width="12" height="12" fill="${groupColor(g)}"/><text x="32" y="${y}" font-size="12">${escape(groupLegend(g))}</text></g>`;
  });
  const height = bottom + 80 + groups.length * 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" role="img" aria-labelledby="timeline-title timeline-desc">
<title id="timeline-title">Bring-up timeline: one row per replica</title>
<desc id="timeline-desc">Each row is one replica, labelled with its devices (logical → physical) and launch group. Bars show its waits, lock, spawn and attach on a time axis from the bring-up start; the table below gives the same data.</desc>
<g class="axis"><text x="14" y="${top - 10}" font-size="12">time since bring-up start</text>${ticks}</g>
${rows}
<g class="legend">${kinds.join('')}${groupKeys.join('')}</g>
</svg>`;
}

/** The table under the picture: the same rows, for screen readers and anyone who wants numbers. */
function renderTable(model) {
  const dur = (r, kind) => {
    const b = r.bars.filter((x) => x.kind === kind);
    return b.length === 0 ? '—' : ms(b.reduce((s, x) => s + x.end - x.start, 0));
  };
  const body = model.rows
    .map(
      (r) =>
        `<tr data-stage="${r.stage_id}" data-replica="${r.replica_id}"><th scope="row">${escape(who(r))}</th><td>${escape(r.group ?? '—')}</td><td>${escape(devicesText(r))}</td><td>${r.started === null ? '—' : ms(r.started)}</td><td>${r.ready !== null ? ms(r.ready) : r.failed !== null ? `failed (${escape(r.failed)})` : 'never'}</td><td>${dur(r, 'lock')}</td><td>${dur(r, 'spawn')}</td><td>${dur(r, 'attach')}</td><td>${escape(r.why)}</td></tr>`,
    )
    .join('\n');
  return `<table>
<caption>Bring-up per replica (times in ms since the bring-up start)</caption>
<thead><tr><th scope="col">Replica</th><th scope="col">Launch group</th><th scope="col">Devices (logical → physical)</th><th scope="col">Started locking</th><th scope="col">Ready</th><th scope="col">Lock</th><th scope="col">Spawn</th><th scope="col">Attach</th><th scope="col">Why late</th></tr></thead>
<tbody>
${body}
</tbody>
</table>`;
}

/** The whole page: no scripts, fonts or other files; it opens from disk anywhere. */
export function renderTimeline(model, title) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-top:1em}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left}caption{text-align:left;font-weight:bold;margin-bottom:.4em}</style></head>
<body><main><h1>${escape(title)}</h1>
<p>Launch groups start concurrently; the members of one group start one after another. A row that says <em>late</em> waited for its launch group (the member before it had to be ready) or for a device lock (held by the replica named).</p>
<figure>${renderSvg(model)}</figure>
${renderTable(model)}
</main></body>
</html>
`;
}

/**
 * The plugin factory: `plugins: [{ name: omnistage-plugin-timeline, options: { out: timeline.html } }]`.
 * `out` is relative to the pipeline file that names the plugin (omnistage passes its folder).
 */
export default function timelinePlugin(options = {}, context = {}) {
  const out = resolve(context.baseDir ?? process.cwd(), options.out ?? 'timeline.html');
  return {
    name: 'omnistage-plugin-timeline',
    version: '1.0.0',
    coreVersion: '>=0.1.0',
    apply(api) {
      let events = [];
      api.events.onAny((e) => {
        // A new plan is a new bring-up: the page shows the latest one.
        if (e.type === 'pipeline:planned') events = [];
        if (USED.has(e.type)) events.push(e);
      });
      api.events.on('pipeline:stopped', (e) => {
        mkdirSync(dirname(out), { recursive: true });
        writeFileSync(out, renderTimeline(timelineModel(events), `omnistage bring-up, run ${e.run_id}`));
        api.logger.info(`timeline written to ${out}`);
      });
    },
  };
}
