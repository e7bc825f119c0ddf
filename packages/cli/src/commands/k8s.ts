import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import { OmniError } from '@omnistage/core';
import { secondsOption, type CliValues } from '../args.js';
import { agentGroups } from '../k8s/agent-groups.js';
import { kustomization, manifestFiles, type ManifestInput } from '../k8s/manifests.js';
import { DEFAULT_DRAIN_TIMEOUT_S } from '../serve-options.js';
import { openSession, planSession } from '../session.js';
import { printWarnings } from './validate.js';

const DEFAULT_IMAGE = 'omnistage:latest';

function deployPlatform(values: CliValues): 'cuda' | 'cpu' {
  const p = values.platform ?? 'cuda';
  if (p !== 'cuda' && p !== 'cpu') {
    throw new OmniError('OMNI_USAGE', `\`omnistage k8s\` deploys on cuda or cpu, got --platform ${p}`, {
      hint: 'cuda: agents request nvidia.com/gpu; cpu: virtual devices and no GPU requests (kind, k3s)',
    });
  }
  return p;
}

/** `--tls-cert/--tls-key/--tls-ca`: all three (copied beside the manifests for the Secret) or none. */
function tlsFiles(values: CliValues): [string, string][] | null {
  const given = { 'cert.pem': values['tls-cert'], 'key.pem': values['tls-key'], 'ca.pem': values['tls-ca'] };
  const set = Object.entries(given).filter((e): e is [string, string] => e[1] !== undefined);
  if (set.length === 0) return null;
  if (set.length < 3) {
    throw new OmniError('OMNI_USAGE', '`omnistage k8s` needs --tls-cert, --tls-key and --tls-ca together', {
      hint: "the head's certificate must name `omnistage-head`, the address agents' replicas dial (docs/kubernetes.md)",
    });
  }
  return set;
}

function writeSecretFiles(out: string, values: CliValues, tls: [string, string][] | null): void {
  const secret = join(out, 'cluster-secret');
  if (values['cluster-secret-file'] !== undefined) copyFileSync(values['cluster-secret-file'], secret);
  // Kept when it exists, so regenerating the manifests does not change the secret of a running cluster.
  else if (!existsSync(secret)) writeFileSync(secret, randomBytes(32).toString('base64'), { mode: 0o600 });
  for (const [name, from] of tls ?? []) copyFileSync(from, join(out, name));
}

/**
 * `omnistage k8s FILE [--out DIR]`: writes a kustomize base that deploys the pipeline on a
 * cluster (docs/kubernetes.md): the file as a ConfigMap, the head, one agent StatefulSet per kind
 * of agent pod the plan needs, etcd unless --etcd names one, and the Secrets. Starts nothing.
 */
export async function k8sCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const platform = deployPlatform(values);
  const tls = tlsFiles(values);
  // The layout is planned on virtual devices: the file's logical devices, no GPU needed here.
  const session = await openSession(file, { ...values, platform: 'cpu' }, logger);
  const plan = await planSession(session);
  printWarnings(plan.warnings, values);
  const input: ManifestInput = {
    fileName: basename(session.config.file),
    fileText: readFileSync(session.config.file, 'utf8'),
    groups: agentGroups(plan),
    stageIds: plan.stages.map((s) => s.stage_id),
    image: values.image ?? DEFAULT_IMAGE,
    etcd: values.etcd,
    drainTimeoutS: secondsOption(values, 'drain-timeout') ?? DEFAULT_DRAIN_TIMEOUT_S,
    platform,
    engine: values.engine,
    tls: tls !== null,
  };
  const out = values.out ?? 'omnistage-k8s';
  mkdirSync(out, { recursive: true });
  const files = manifestFiles(input);
  for (const [name, objects] of files) {
    writeFileSync(join(out, name), objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n'));
  }
  writeFileSync(join(out, 'kustomization.yaml'), stringify(kustomization([...files.keys()], input.tls)));
  writeSecretFiles(out, values, tls);
  const pods = input.groups.map((g) => `${g.pods} × stages ${g.stages.join(',')} (${g.gpus} GPU)`).join('; ');
  logger.info(`wrote ${files.size + 1} manifests to ${out} (agents: ${pods}); deploy with: kubectl apply -k ${out}`);
  return 0;
}
