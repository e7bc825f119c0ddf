export { OmniServer } from './server.js';
export type { OmniServerOptions } from './server.js';
export { ServerMetrics } from './metrics.js';
export type { MetricsSource } from './metrics.js';
export { servePipeline } from './served-pipeline.js';
export type { ServedPipeline, ServedRequest, ServedStage } from './served-pipeline.js';
export { HttpError } from './http-error.js';
export type { HttpErrorCode, OpenAIErrorBody, OpenAIErrorType } from './http-error.js';
export { isLoopbackHost } from './auth.js';
