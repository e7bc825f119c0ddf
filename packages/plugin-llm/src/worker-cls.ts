import { OmniError, suggestions } from '@omnistage/core';
import type { EngineArgs, PlatformName, SourceLocation } from '@omnistage/core';

/** The worker types vLLM-Omni knows, in the lower case that resolution compares against. */
export const WORKER_TYPES = ['ar', 'generation'] as const;
export type WorkerType = (typeof WORKER_TYPES)[number];

const GPU_WORKERS = {
  ar: 'vllm_omni.worker.gpu_ar_worker.GPUARWorker',
  generation: 'vllm_omni.worker.gpu_generation_worker.GPUGenerationWorker',
} as const;

/**
 * Worker class paths per platform and worker type (upstream `resolve_worker_cls`). ROCm uses the CUDA classes like
 * upstream; `cpu` (omnistage's virtual-device platform) has no vLLM-Omni worker of its own, so it
 * gets the CUDA paths too — they are only strings until a real vLLM engine imports them.
 */
export const WORKER_CLASS_PATHS: Readonly<Record<PlatformName, Readonly<Record<WorkerType, string>>>> = {
  cuda: GPU_WORKERS,
  rocm: GPU_WORKERS,
  cpu: GPU_WORKERS,
  npu: {
    ar: 'vllm_omni.platforms.npu.worker.npu_ar_worker.NPUARWorker',
    generation: 'vllm_omni.platforms.npu.worker.npu_generation_worker.NPUGenerationWorker',
  },
  xpu: {
    ar: 'vllm_omni.platforms.xpu.worker.xpu_ar_worker.XPUARWorker',
    generation: 'vllm_omni.platforms.xpu.worker.xpu_generation_worker.XPUGenerationWorker',
  },
};

/**
 * Sets `engineArgs.worker_cls` from `engineArgs.worker_type` for the given platform (upstream
 * `resolve_worker_cls` in `vllm_omni/engine/stage_init_utils.py`). **Mutates `engineArgs`**, like upstream; run it on a copy.
 *
 * 1. `worker_type` falsy (absent, null, `''`) → no change.
 * 2. `worker_cls` set to anything but `null`/`'auto'` → no change (an explicit class wins).
 * 3. `worker_type` is stringified and lower-cased (`'AR'` works): `ar` / `generation` → the
 *    platform's class path; anything else → `OMNI_CONFIG_INVALID` at `locate()` (the YAML position
 *    of `engine_args.worker_type`), listing the valid types.
 *
 * The error carries `stage_id` in its context when `engineArgs.stage_id` is a number (it is once
 * {@link buildEngineArgsDict} has stamped it).
 */
export function resolveWorkerCls(engineArgs: EngineArgs, platform: PlatformName, locate?: () => SourceLocation): void {
  const rawType = engineArgs['worker_type'];
  if (rawType === null || rawType === undefined || rawType === '' || rawType === false || rawType === 0) return;
  const workerCls = engineArgs['worker_cls'];
  if (workerCls !== null && workerCls !== undefined && workerCls !== 'auto') return;

  // Python's str(x).lower(): a YAML boolean or number becomes its text and then fails below.
  const workerType = String(rawType).toLowerCase();
  if (workerType === 'ar' || workerType === 'generation') {
    engineArgs['worker_cls'] = WORKER_CLASS_PATHS[platform][workerType];
    return;
  }

  const stageId = engineArgs['stage_id'];
  const suggestion = suggestions(workerType, WORKER_TYPES, 1)[0];
  throw new OmniError('OMNI_CONFIG_INVALID', `Unknown worker_type '${workerType}'.`, {
    ...(locate ? { location: locate() } : {}),
    hint:
      `${suggestion === undefined ? '' : `Did you mean '${suggestion}'? `}` +
      "worker_type must be 'ar' (autoregressive) or 'generation' (non-AR, e.g. code2wav), " +
      'or set engine_args.worker_cls to a worker class path explicitly.',
    context: {
      ...(typeof stageId === 'number' ? { stage_id: stageId } : {}),
      worker_type: workerType,
      platform,
    },
  });
}
