// omnistage-plugin-timeline: observes lifecycle events only (no hooks), and when the pipeline stops
// writes an HTML page with an SVG bar per replica: lock wait, spawn and attach, on one time axis,
// and (init phases) the replica's exclusive init windows as a narrow bar over its attach.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const COLORS = { lock: '#d9822b', spawn: '#4c78a8', attach: '#54a24b', window: '#b2182b' };
const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/** Builds the page from the recorded phase intervals (ms since the first event). */
export function renderTimeline(rows, title) {
  const end = Math.max(1, ...rows.flatMap((r) => r.phases.map((p) => p.end)));
  const width = 900;
  const rowH = 28;
  const left = 170;
  const scale = (width - left - 20) / end;
  const bars = rows
    .map((r, i) => {
      const y = 30 + i * rowH;
      const label = `<text x="8" y="${y + 17}" font-size="13">stage ${r.stage_id} replica ${r.replica_id}</text>`;
      // Windows last, so they are drawn over the attach they happen in.
      const rects = [...r.phases.filter((p) => p.phase !== 'window'), ...r.phases.filter((p) => p.phase === 'window')]
        .map(
          (p) =>
            `<rect x="${(left + p.start * scale).toFixed(1)}" y="${y + (p.phase === 'window' ? 9 : 4)}" width="${Math.max(1, (p.end - p.start) * scale).toFixed(1)}" height="${rowH - (p.phase === 'window' ? 18 : 8)}" fill="${COLORS[p.phase]}"><title>${p.phase}: ${(p.end - p.start).toFixed(1)} ms</title></rect>`,
        )
        .join('');
      return label + rects;
    })
    .join('\n');
  const height = 60 + rows.length * rowH;
  const legend = Object.entries(COLORS)
    .map(([k, c], i) => `<rect x="${left + i * 110}" y="${height - 22}" width="12" height="12" fill="${c}"/><text x="${left + i * 110 + 18}" y="${height - 12}" font-size="12">${k}</text>`)
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<text x="${left}" y="18" font-size="12">0 ms</text><text x="${width - 80}" y="18" font-size="12">${end.toFixed(0)} ms</text>
${bars}
${legend}
</svg>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>\n${svg}\n</body></html>\n`;
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
      let t0 = null;
      const rows = new Map();
      const open = new Map();
      api.events.onAny((e) => {
        t0 ??= e.ts;
        // An exclusive init window (replica:window start/end) is drawn like a phase.
        const span =
          e.type === 'replica:window' && e.state !== 'waiting' ? { phase: 'window', status: e.state } : e.type === 'replica:phase' ? e : null;
        if (span === null || !COLORS[span.phase]) return;
        const key = `${e.stage_id}/${e.replica_id}`;
        if (!rows.has(key)) rows.set(key, { stage_id: e.stage_id, replica_id: e.replica_id, phases: [] });
        const k = `${key}/${span.phase}`;
        if (span.status === 'start') open.set(k, e.ts - t0);
        else if (open.has(k)) {
          rows.get(key).phases.push({ phase: span.phase, start: open.get(k), end: e.ts - t0 });
          open.delete(k);
        }
      });
      api.events.on('pipeline:stopped', (e) => {
        const list = [...rows.values()].sort((a, b) => a.stage_id - b.stage_id || a.replica_id - b.replica_id);
        mkdirSync(dirname(out), { recursive: true });
        writeFileSync(out, renderTimeline(list, `omnistage bring-up, run ${e.run_id}`));
        api.logger.info(`timeline written to ${out}`);
      });
    },
  };
}
