/**
 * The live status region at the bottom of a terminal. Anything else written to stderr while it is
 * shown (log lines) goes through {@link writeAboveRegion}: the region is erased, the text written,
 * the region drawn again below it — so log lines are never overwritten and rows never go stale.
 */
let region: { erase(): void; draw(): void } | null = null;

export function setRegion(r: { erase(): void; draw(): void } | null): void {
  region = r;
}

export function writeAboveRegion(out: NodeJS.WritableStream, text: string): void {
  region?.erase();
  out.write(text);
  region?.draw();
}
