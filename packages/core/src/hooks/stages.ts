/**
 * Tap `stage` constants. Hooks are ordered by stage only (tapable's `before` has order bugs, see
 * docs/architecture.md), lower runs first; equal stages keep registration order.
 */
/** Stage-type plugins (llm, diffusion, yours): they own the shape of their stage's args. */
export const STAGE_TYPE = 0;
/** Cross-cutting plugins that enrich args after the stage type (KV connectors). */
export const STAGE_CONNECTOR = 100;
/** User adjustments that must see everything else. */
export const STAGE_USER = 200;
/** Core's own lock, spawn and attach taps: after everything, so any plugin tap answers first. */
export const STAGE_BUILTIN = 1_000_000;
