/** Upstream defaults (`AsyncOmniEngine`'s `stage_init_timeout` and `init_timeout`): per-replica init budget and whole-pipeline budget, in seconds. */
export const DEFAULT_STAGE_INIT_TIMEOUT_S = 300;
/** Seconds the whole pipeline may take to come up (`init_timeout`, upstream's default). */
export const DEFAULT_INIT_TIMEOUT_S = 600;
/** Grace between SIGTERM and SIGKILL of a replica's process group (upstream's terminate → kill grace: 5 s). */
export const DEFAULT_STOP_GRACE_MS = 5_000;
