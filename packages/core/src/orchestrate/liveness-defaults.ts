/**
 * Liveness defaults, apart from liveness.ts so the config loader can check a file's settings
 * against them without importing the watcher.
 */

/** Heartbeat interval asked of control-protocol replicas (`runtime.heartbeat_interval_s`). */
export const DEFAULT_HEARTBEAT_MS = 2_000;
/** Silence after which a replica that sends heartbeats is unresponsive (`runtime.heartbeat_timeout_s`). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;
/** Pause between readiness re-checks of HTTP replicas (`runtime.readiness_interval_s`). */
export const DEFAULT_READINESS_MS = 5_000;
/** Consecutive failed re-checks that take an HTTP replica out of rotation (`runtime.readiness_failures`). */
export const DEFAULT_READINESS_FAILURES = 3;
/** Cap on one readiness re-check (a healthy engine answers its health endpoint in milliseconds). */
export const READINESS_CHECK_TIMEOUT_MS = 2_000;
