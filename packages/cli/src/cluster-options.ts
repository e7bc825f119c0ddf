import { createServer, isIP } from 'node:net';
import { hostname } from 'node:os';
import { OmniError } from '@omnistage/core';
import { isLoopbackHost } from '@omnistage/server';
import { readClusterSecret } from '@omnistage/core/cluster';
import type { CliValues } from './args.js';

/** Scale-out options shared by `serve --head`, `up --head` and `agent`. */
export interface ClusterCliOptions {
  etcd: string;
  hostId: string;
  ttlS: number;
  secret: Buffer | null;
}

function positiveInt(
  values: CliValues,
  name: 'min-ready' | 'replicas' | 'lease-ttl' | 'control-port' | 'payload-port' | 'max-payload-bytes',
  fallback: number,
  min = 1,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    throw new OmniError('OMNI_USAGE', `--${name} must be an integer of at least ${min}, got "${raw}"`, {
      hint: `e.g. --${name} ${Math.max(min, fallback)}`,
    });
  }
  return Number(raw);
}

/** `--payload-port` (head, agent): 0 (any free port) when not given. */
export function payloadPort(values: CliValues): number {
  const port = positiveInt(values, 'payload-port', 0, 0);
  if (port > 65535)
    throw new OmniError('OMNI_USAGE', `--payload-port must be a TCP port (at most 65535), got "${port}"`, {
      hint: 'e.g. --payload-port 7331, or leave it out for any free port',
    });
  return port;
}

/** A comma-separated list of stage ids (`--stages 1,3`). */
export function stageList(values: CliValues, name: 'stages' | 'local-stages'): number[] | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const ids = raw.split(',').map((s) => s.trim());
  if (ids.some((s) => !/^\d+$/.test(s))) {
    throw new OmniError('OMNI_USAGE', `--${name} must be stage ids separated by commas, got "${raw}"`, {
      hint: `e.g. --${name} 1,3`,
    });
  }
  return ids.map(Number);
}

/** `--etcd`, `--host-id`, `--lease-ttl`, `--cluster-secret-file`. */
export async function clusterOptions(values: CliValues, command: string): Promise<ClusterCliOptions> {
  if (values.etcd === undefined)
    throw new OmniError('OMNI_USAGE', `\`omnistage ${command}\` needs --etcd URL`, {
      hint: 'e.g. --etcd http://127.0.0.1:2379',
    });
  const file = values['cluster-secret-file'];
  return {
    etcd: values.etcd,
    hostId: values['host-id'] ?? hostname(),
    ttlS: positiveInt(values, 'lease-ttl', 10, 2),
    secret: file === undefined ? null : await readClusterSecret(file),
  };
}

/** Head-only options: where the control port binds, and what must be live before serving. */
export function headOptions(
  values: CliValues,
  secret: Buffer | null,
): {
  bindHost: string;
  port: number;
  advertise?: string;
  minReady?: number;
  localStages?: number[];
  payloadPort: number;
  maxPayloadBytes?: number;
} {
  const bindHost = values['control-host'] ?? '127.0.0.1';
  // Without a secret, anyone who can read etcd can compute the tokens: only on loopback, or when asked for.
  if (secret === null && !isLoopbackHost(bindHost) && !values.insecure) {
    throw new OmniError(
      'OMNI_USAGE',
      `--control-host ${bindHost} is not a loopback address and no --cluster-secret-file was given`,
      {
        hint: 'give head and agents the same --cluster-secret-file (or pass --insecure on a trusted network)',
      },
    );
  }
  const localStages = stageList(values, 'local-stages');
  return {
    bindHost,
    port: positiveInt(values, 'control-port', 0, 0),
    payloadPort: payloadPort(values),
    ...(values['max-payload-bytes'] === undefined
      ? {}
      : { maxPayloadBytes: positiveInt(values, 'max-payload-bytes', 2 ** 31) }),
    ...(values.advertise === undefined ? {} : { advertise: values.advertise }),
    // Given, it overrides every stage's runtime.min_ready.
    ...(values['min-ready'] === undefined ? {} : { minReady: positiveInt(values, 'min-ready', 1) }),
    ...(localStages === undefined ? {} : { localStages }),
  };
}

/** Agent-only options. */
export function agentOptions(values: CliValues): { stages: number[]; replicas: number; address?: string } {
  const stages = stageList(values, 'stages');
  if (stages === undefined || stages.length === 0)
    throw new OmniError('OMNI_USAGE', '`omnistage agent` needs --stages', {
      hint: 'e.g. --stages 1 (the stage ids this host serves)',
    });
  const address = values.advertise;
  // Replicas bind on it and dial from it: it must be an address of this host, not a name.
  if (address !== undefined && isIP(address) === 0) {
    throw new OmniError('OMNI_USAGE', `--advertise must be an IP address of this host, got "${address}"`, {
      hint: 'e.g. --advertise 10.0.0.7 (or 127.0.0.2 to try a second "host" on one machine)',
    });
  }
  return { stages, replicas: positiveInt(values, 'replicas', 1), ...(address === undefined ? {} : { address }) };
}

/** Fails with a usage error when `address` is not one this host can bind (EADDRNOTAVAIL). */
export async function checkHostAddress(address: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new OmniError(
          'OMNI_USAGE',
          `--advertise ${address} is not an address of this host (${err.code ?? err.message})`,
          { hint: "`ip -brief address` lists this host's addresses" },
        ),
      ),
    );
    probe.listen(0, address, () => probe.close(() => resolve()));
  });
}
