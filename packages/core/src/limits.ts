/**
 * Hard limits on configuration inputs and on what a plan may ask for. A real pipeline file is a
 * few KiB with a few hundred values and a real stage a handful of replicas; these limits are far
 * above that and exist so that any input, however hostile, is accepted or refused within about a
 * second and bounded memory. docs/errors.md lists them (generated from this file).
 */
export const CONFIG_LIMITS = Object.freeze({
  /** Bytes of one configuration text (file, base_config or --stage-overrides). */
  maxTextBytes: 8 * 1024 * 1024,
  /** Values after alias expansion: guards against "billion laughs" documents. */
  maxNodes: 100_000,
  /** Anchors (`&name`) plus aliases (`*name`): the YAML parser's cost grows with their square. */
  maxAliases: 1000,
  /** Nesting of maps and lists. */
  maxDepth: 64,
  /** Characters of one string value. */
  maxStringChars: 1024 * 1024,
  /** Characters of one map key. */
  maxKeyChars: 256,
});

/** What one plan may ask for (replicas per stage, tensor parallel size): refused above these. */
export const PLAN_LIMITS = Object.freeze({
  /** Replicas of one stage (`runtime.num_replicas`). */
  maxReplicas: 4096,
  /** Any parallel size or world size of one replica (tensor, pipeline, data, sequence, ...). */
  maxParallelSize: 65536,
});
