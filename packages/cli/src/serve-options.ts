import { basename, dirname, extname } from 'node:path';
import { MAX_INFLIGHT_LIMIT, OmniError, type PipelineConfig } from '@omnistage/core';
import { secondsOption, type CliValues } from './args.js';

/** `omnistage serve`'s own options, checked before anything starts (a bad one is exit 2). */
export interface ServeOptions {
  host: string;
  port: number;
  apiKey: string | undefined;
  metricsPublic: boolean;
  /** Origins browsers may call from (`*`: any); empty: CORS off. */
  allowedOrigins: string[];
  /** `--speech-stage`: where /v1/audio/speech enters (undefined: the rule in @omnistage/server). */
  speechStage: number | undefined;
  maxInflight: number;
  /** The per-replica bound of stages whose file sets none (undefined: the router's default). */
  maxInflightPerReplica: number | undefined;
  requestTimeoutMs: number | undefined;
  drainTimeoutMs: number;
  bodyLimitBytes: number;
}

export const DEFAULT_PORT = 8000;
export const DEFAULT_DRAIN_TIMEOUT_S = 30;

function integerOption<F extends number | undefined>(
  values: CliValues,
  name: 'port' | 'max-inflight' | 'max-inflight-per-replica' | 'max-body-mb' | 'speech-stage',
  fallback: F,
  min: number,
  max: number,
): number | F {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new OmniError('OMNI_USAGE', `--${name} must be an integer from ${min} to ${max}, got "${raw}"`, {
      hint: `e.g. --${name} ${fallback ?? min}`,
    });
  }
  return Number(raw);
}

/** `--allowed-origins a,b` → origins; each must be `*` or a scheme, host and optional port. */
function allowedOrigins(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const origins = raw.split(',').map((o) => o.trim());
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) {
      throw new OmniError('OMNI_USAGE', `--allowed-origins: "${o}" is not an origin`, {
        hint: 'give origins as the browser sends them, without a path: --allowed-origins https://app.example.com,http://localhost:3000 (or * for any)',
      });
    }
  }
  return origins;
}

export function serveOptions(values: CliValues, env: NodeJS.ProcessEnv): ServeOptions {
  const apiKey = values['api-key'] ?? env['OMNISTAGE_API_KEY'];
  if (apiKey !== undefined && apiKey.trim() === '') {
    throw new OmniError('OMNI_USAGE', 'the API key is empty', {
      hint: 'give a non-empty --api-key (or OMNISTAGE_API_KEY), or none to serve without one',
    });
  }
  const requestTimeoutS = secondsOption(values, 'request-timeout');
  return {
    host: values.host ?? '127.0.0.1',
    port: integerOption(values, 'port', DEFAULT_PORT, 0, 65535),
    apiKey,
    metricsPublic: values['metrics-public'] ?? false,
    allowedOrigins: allowedOrigins(values['allowed-origins']),
    speechStage: integerOption(values, 'speech-stage', undefined, 0, 1_000_000),
    maxInflight: integerOption(values, 'max-inflight', 1024, 1, 1_000_000),
    maxInflightPerReplica: integerOption(values, 'max-inflight-per-replica', undefined, 1, MAX_INFLIGHT_LIMIT),
    requestTimeoutMs: requestTimeoutS === undefined ? undefined : requestTimeoutS * 1000,
    drainTimeoutMs: (secondsOption(values, 'drain-timeout') ?? DEFAULT_DRAIN_TIMEOUT_S) * 1000,
    bodyLimitBytes: integerOption(values, 'max-body-mb', 64, 1, 4096) * 1024 * 1024,
  };
}

/**
 * The name clients send as `model`: --served-model-name, --model, the file's `model:`, or the file
 * name. A file named `pipeline.yaml` says nothing about what it serves, so its folder names it
 * (`examples/quickstart/pipeline.yaml` serves `quickstart`).
 */
export function servedModelName(values: CliValues, config: PipelineConfig): string {
  const stem = basename(config.file, extname(config.file));
  const fromFile = stem === 'pipeline' ? basename(dirname(config.file)) : stem;
  return values['served-model-name'] ?? values.model ?? config.model ?? fromFile;
}
