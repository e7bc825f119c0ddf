/**
 * Reads the timeline plugin's HTML page the way a browser would (parse5, the WHATWG HTML parser) and
 * returns its structure: the SVG rows, axis ticks and legend, and the table under it. Tests assert
 * on this structure, never on one string of the page.
 */
import { parse, type DefaultTreeAdapterMap } from 'parse5';

type Node = DefaultTreeAdapterMap['childNode'] | DefaultTreeAdapterMap['document'];
type Element = DefaultTreeAdapterMap['element'];

const SVG_NS = 'http://www.w3.org/2000/svg';

function isElement(node: Node): node is Element {
  return 'tagName' in node;
}

/** Every element under `root` (depth first, document order) that `pred` accepts. */
function findAll(root: Node, pred: (el: Element) => boolean): Element[] {
  const out: Element[] = [];
  const walk = (node: Node): void => {
    if (isElement(node) && pred(node)) out.push(node);
    if ('childNodes' in node) for (const child of node.childNodes) walk(child);
  };
  walk(root);
  return out;
}

function attr(el: Element, name: string): string | undefined {
  return el.attrs.find((a) => a.name === name)?.value;
}

function hasClass(el: Element, name: string): boolean {
  return (attr(el, 'class') ?? '').split(/\s+/).includes(name);
}

/** The text of an element, as a screen reader would get it (whitespace collapsed). */
function textOf(node: Node): string {
  if (node.nodeName === '#text') return (node as DefaultTreeAdapterMap['textNode']).value;
  return 'childNodes' in node ? node.childNodes.map(textOf).join('').replace(/\s+/g, ' ').trim() : '';
}

/** Direct children that are elements with this tag. */
function children(el: Element, tag: string): Element[] {
  return el.childNodes.filter((c): c is Element => isElement(c) && c.tagName === tag);
}

const num = (el: Element, name: string): number => Number(attr(el, name));

export interface PageBar {
  kind: string;
  x: number;
  width: number;
  title: string;
}

export interface PageRow {
  key: string;
  group: string;
  /** The row's texts by class: `label`, `devices`, `group`, `why`. */
  texts: Record<string, string>;
  /** The colour of the row's band (its launch group's). */
  band: string | undefined;
  bars: PageBar[];
}

export interface TimelinePage {
  title: string;
  /** Parse errors the HTML parser reported (a well-formed page has none). */
  parseErrors: string[];
  /** Elements that would load or run something from elsewhere (script, link, img, iframe, src/href attributes). */
  external: string[];
  svg: {
    namespace: string | undefined;
    viewBox: number[];
    ariaLabelledBy: string[];
    titleText: string;
    rows: PageRow[];
    ticks: { x: number; label: string }[];
    groupKeys: { group: string; text: string; color: string | undefined }[];
    /** Every rect's geometry, to check it lies inside the view box. */
    rects: { x: number; y: number; width: number; height: number }[];
  };
  table: { caption: string; headers: string[]; rows: Record<string, string>[]; rowKeys: string[] };
}

/** Parses the page and extracts its picture and table; throws when a required part is missing. */
export function readTimelinePage(html: string): TimelinePage {
  const parseErrors: string[] = [];
  const doc = parse(html, { onParseError: (e) => parseErrors.push(`${e.code} at ${e.startLine}:${e.startCol}`) });
  const one = (pred: (el: Element) => boolean, what: string, root: Node = doc): Element => {
    const found = findAll(root, pred);
    if (found.length !== 1) throw new Error(`expected one ${what} in the page, found ${found.length}`);
    return found[0]!;
  };
  const svg = one((el) => el.tagName === 'svg', '<svg>');
  const external = findAll(
    doc,
    (el) =>
      ['script', 'link', 'img', 'iframe', 'object', 'embed'].includes(el.tagName) ||
      el.attrs.some((a) => a.name === 'src' || a.name.endsWith('href')),
  ).map((el) => el.tagName);

  const rows = findAll(svg, (el) => el.tagName === 'g' && hasClass(el, 'row')).map((g): PageRow => {
    const texts: Record<string, string> = {};
    for (const t of children(g, 'text')) texts[attr(t, 'class') ?? ''] = textOf(t);
    const bars = children(g, 'rect')
      .filter((r) => hasClass(r, 'bar'))
      .map((r) => ({
        kind: (attr(r, 'class') ?? '').replace('bar', '').trim(),
        x: num(r, 'x'),
        width: num(r, 'width'),
        title: textOf(r),
      }));
    return {
      key: `${attr(g, 'data-stage')}/${attr(g, 'data-replica')}`,
      group: attr(g, 'data-group') ?? '',
      texts,
      band: attr(children(g, 'rect')[0]!, 'fill'),
      bars,
    };
  });
  const axis = one((el) => el.tagName === 'g' && hasClass(el, 'axis'), 'axis group', svg);
  const ticks = findAll(axis, (el) => el.tagName === 'g' && hasClass(el, 'tick')).map((t) => ({
    x: num(children(t, 'line')[0]!, 'x1'),
    label: textOf(children(t, 'text')[0]!),
  }));
  const groupKeys = findAll(svg, (el) => el.tagName === 'g' && hasClass(el, 'group-key')).map((g) => ({
    group: attr(g, 'data-group') ?? '',
    text: textOf(g),
    color: attr(children(g, 'rect')[0]!, 'fill'),
  }));

  const table = one((el) => el.tagName === 'table', '<table>');
  const headers = findAll(
    one((el) => el.tagName === 'thead', '<thead>', table),
    (el) => el.tagName === 'th',
  ).map(textOf);
  const bodyRows = findAll(
    one((el) => el.tagName === 'tbody', '<tbody>', table),
    (el) => el.tagName === 'tr',
  );
  return {
    title: textOf(one((el) => el.tagName === 'title' && el.namespaceURI !== SVG_NS, 'page <title>')),
    parseErrors,
    external,
    svg: {
      namespace: svg.namespaceURI,
      viewBox: (attr(svg, 'viewBox') ?? '').split(/\s+/).map(Number),
      ariaLabelledBy: (attr(svg, 'aria-labelledby') ?? '').split(/\s+/).filter(Boolean),
      titleText: textOf(children(svg, 'title')[0] ?? svg),
      rows,
      ticks,
      groupKeys,
      rects: findAll(svg, (el) => el.tagName === 'rect').map((r) => ({
        x: num(r, 'x'),
        y: num(r, 'y'),
        width: num(r, 'width'),
        height: num(r, 'height'),
      })),
    },
    table: {
      caption: textOf(one((el) => el.tagName === 'caption', '<caption>', table)),
      headers,
      rows: bodyRows.map((tr) =>
        Object.fromEntries(
          findAll(tr, (el) => el.tagName === 'th' || el.tagName === 'td').map((cell, i) => [
            headers[i] ?? `#${i}`,
            textOf(cell),
          ]),
        ),
      ),
      rowKeys: bodyRows.map((tr) => `${attr(tr, 'data-stage')}/${attr(tr, 'data-replica')}`),
    },
  };
}

/** A tick or table label (`250 ms`, `1.5 s`) in ms; NaN when it is neither. */
export function labelMs(label: string): number {
  const m = /^(\d+(?:\.\d+)?) (ms|s)$/.exec(label);
  return m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : NaN;
}

/** Checks shared by every page: well formed, self-contained, accessible, and its axis is a real axis. Returns problems. */
export function pageProblems(page: TimelinePage): string[] {
  const problems: string[] = [...page.parseErrors.map((e) => `HTML parse error ${e}`)];
  if (page.title === '') problems.push('the page has no <title>');
  if (page.external.length > 0) problems.push(`the page loads from elsewhere: ${page.external.join(', ')}`);
  const { svg } = page;
  if (svg.namespace !== SVG_NS) problems.push(`the picture is not in the SVG namespace (${svg.namespace})`);
  if (svg.ariaLabelledBy.length === 0 || svg.titleText === '')
    problems.push('the SVG has no accessible name (aria-labelledby + <title>)');
  const [vx, vy, vw, vh] = svg.viewBox;
  if (svg.viewBox.length !== 4 || svg.viewBox.some((n) => !Number.isFinite(n)))
    problems.push(`bad viewBox ${svg.viewBox.join(' ')}`);
  for (const r of svg.rects) {
    if (![r.x, r.y, r.width, r.height].every(Number.isFinite) || r.width <= 0 || r.height <= 0)
      problems.push(`a rect with bad geometry ${JSON.stringify(r)}`);
    else if (r.x < vx! || r.y < vy! || r.x + r.width > vx! + vw! + 0.5 || r.y + r.height > vy! + vh! + 0.5)
      problems.push(`a rect outside the view box ${JSON.stringify(r)}`);
  }
  const ms = svg.ticks.map((t) => labelMs(t.label));
  if (svg.ticks.length < 3) problems.push(`only ${svg.ticks.length} axis ticks`);
  if (ms.some(Number.isNaN))
    problems.push(`tick labels that are not times: ${svg.ticks.map((t) => t.label).join(', ')}`);
  if (ms[0] !== 0) problems.push(`the axis does not start at 0 (bring-up start): ${svg.ticks[0]?.label}`);
  for (let i = 1; i < ms.length; i++) {
    if (!(ms[i]! > ms[i - 1]!) || !(svg.ticks[i]!.x > svg.ticks[i - 1]!.x))
      problems.push(`ticks not increasing at ${svg.ticks[i]!.label}`);
  }
  if (page.table.rowKeys.join() !== svg.rows.map((r) => r.key).join())
    problems.push(
      `the table's rows (${page.table.rowKeys.join()}) are not the picture's (${svg.rows.map((r) => r.key).join()})`,
    );
  return problems;
}
