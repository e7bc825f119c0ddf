/** `@omnistage/plugin-diffusion`: stage type `diffusion` and its `reference` engine. */
export { DIFFUSION_PLUGIN_NAME, diffusionPlugin } from './diffusion-plugin.js';
export type { DiffusionPluginOptions } from './diffusion-plugin.js';
