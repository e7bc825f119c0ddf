/**
 * `@omnistage/core/testing`: helpers a plugin's tests may use to build what core's loader would
 * (a `StageConfig` with defaults, a location index over YAML text).
 */
export { createStageConfig } from '../config/stage-defaults.js';
export { LocationIndex } from '../config/location-index.js';
