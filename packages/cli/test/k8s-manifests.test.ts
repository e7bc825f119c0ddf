/**
 * `omnistage k8s FILE` for every example: the manifests match their golden files
 * (test/golden/k8s/<example>/; UPDATE_GOLDEN=1 rewrites them), every object validates against
 * Kubernetes' own OpenAPI schemas (kubernetes-models, pinned), `kubectl kustomize` renders the base
 * where kubectl is installed, and what the manifests promise holds: probes on the health routes, a
 * termination grace longer than the drain, one GPU per planned device, pod-local device ids.
 * A real cluster is not started here (docs/kubernetes.md says what was and was not tried).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createSandbox, requireBuiltCli, runCleanups, runCli, type Sandbox } from './helpers.js';

const GOLDEN = join(REPO_ROOT, 'packages', 'cli', 'test', 'golden', 'k8s');
const DRY_RUN = join(REPO_ROOT, 'examples', 'upstream-dry-run', 'configs');
const EXAMPLES: [string, string][] = [
  ...readdirSync(join(REPO_ROOT, 'examples'))
    .filter((e) => existsSync(join(REPO_ROOT, 'examples', e, 'pipeline.yaml')))
    .map((e): [string, string] => [e, join(REPO_ROOT, 'examples', e, 'pipeline.yaml')]),
  ...readdirSync(DRY_RUN)
    .filter((f) => f.endsWith('.yaml'))
    .map((f): [string, string] => [`upstream-${f.replace(/\.yaml$/, '')}`, join(DRY_RUN, f)]),
].sort();

/** The model class of each kind the generator writes: `validate()` checks against the schema. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML of Kubernetes objects, which the assertions navigate
type Obj = Record<string, any>;
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

let box: Sandbox;
const generated = new Map<string, string>();

beforeAll(async () => {
  requireBuiltCli();
  box = await createSandbox();
  for (const [name, file] of EXAMPLES) {
    const out = join(box.root, name);
    const r = await runCli(['k8s', file, '--out', out, '--drain-timeout', '45'], { tmpDir: box.tmp });
    if (r.code !== 0) throw new Error(`k8s ${name} failed:\n${r.stderr}`);
    generated.set(name, out);
  }
}, 300_000);
afterAll(runCleanups);

const manifestsOf = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
const objectsOf = (dir: string): Obj[] =>
  manifestsOf(dir)
    .filter((f) => f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Obj));
const container = (o: Obj): Obj => o.spec.template.spec.containers[0];

describe('omnistage k8s: manifests for every example', () => {
  it('covers the examples', () => expect(EXAMPLES.length).toBeGreaterThanOrEqual(13));

  it.each(EXAMPLES)('%s: matches the golden files', (name) => {
    const dir = generated.get(name)!;
    const golden = join(GOLDEN, name);
    if (process.env.UPDATE_GOLDEN === '1') {
      mkdirSync(golden, { recursive: true });
      for (const f of manifestsOf(dir)) writeFileSync(join(golden, f), readFileSync(join(dir, f)));
    }
    expect(manifestsOf(dir)).toEqual(manifestsOf(golden));
    for (const f of manifestsOf(dir))
      expect(readFileSync(join(dir, f), 'utf8'), `${name}/${f}`).toBe(readFileSync(join(golden, f), 'utf8'));
  });

  it.each(EXAMPLES)("%s: every object validates against Kubernetes' schemas", (name) => {
    const objects = objectsOf(generated.get(name)!);
    expect(objects.length).toBeGreaterThanOrEqual(4);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind} ${o.metadata?.name}`).not.toThrow();
    }
  });

  it.each(EXAMPLES)('%s: head probes, drain, agents with GPUs and the node lock dir', (name) => {
    const objects = objectsOf(generated.get(name)!);
    const head = objects.find((o) => o.kind === 'Deployment')!;
    const c = container(head);
    expect(c.args.slice(0, 1)).toEqual(['serve']);
    expect(c.args).toContain('--head');
    expect(c.readinessProbe.httpGet.path).toBe('/health/ready');
    expect(c.livenessProbe.httpGet.path).toBe('/health');
    expect(c.lifecycle.preStop.exec.command.join(' ')).toContain('kill -TERM 1');
    expect(head.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(45);
    expect(c.args[c.args.indexOf('--drain-timeout') + 1]).toBe('45');
    const agents = objects.filter((o) => o.kind === 'StatefulSet' && o.metadata.name.includes('-agent-'));
    expect(agents.length).toBeGreaterThan(0);
    for (const a of agents) {
      const ac = container(a);
      const gpus = ac.resources.limits['nvidia.com/gpu'] as number;
      expect(gpus).toBeGreaterThan(0);
      expect(ac.env.map((e: Obj) => e.valueFrom.fieldRef.fieldPath)).toEqual(['metadata.name', 'status.podIP']);
      expect(ac.args[ac.args.indexOf('--advertise') + 1]).toBe('$(POD_IP)');
      expect(ac.args[ac.args.indexOf('--host-id') + 1]).toBe('$(POD_NAME)');
      expect(a.spec.template.spec.volumes.find((v: Obj) => v.name === 'locks').hostPath.path).toBe(
        '/var/lib/omnistage/locks',
      );
      // Pod-local device ids: every stage's devices lie in 0..gpus-1.
      const overrides = JSON.parse(ac.args[ac.args.indexOf('--stage-overrides') + 1]) as Record<string, Obj>;
      for (const o of Object.values(overrides))
        for (const d of String(o.devices).split(',')) expect(Number(d)).toBeLessThan(gpus);
    }
    const kustomization = readFileSync(join(generated.get(name)!, 'kustomization.yaml'), 'utf8');
    expect(kustomization).toContain('name: omnistage-cluster');
    expect(statSync(join(generated.get(name)!, 'cluster-secret')).mode & 0o077).toBe(0);
  });

  it.skipIf(!hasKubectl).each(EXAMPLES)('%s: kubectl kustomize renders the base', (name) => {
    const r = spawnSync('kubectl', ['kustomize', generated.get(name)!], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const kinds = parseAllDocuments(r.stdout).map((d) => (d.toJS() as Obj).kind as string);
    expect(kinds.filter((k) => k === 'Secret')).toHaveLength(1);
    expect(kinds).toContain('Deployment');
    expect(kinds).toContain('ConfigMap');
  });
});

describe('omnistage k8s: choices', { timeout: 60_000 }, () => {
  it('--etcd of an existing cluster: no etcd StatefulSet, and head and agents use it', async () => {
    const out = join(box.root, 'with-etcd');
    const file = EXAMPLES.find(([n]) => n === 'quickstart')![1];
    const r = await runCli(['k8s', file, '--out', out, '--etcd', 'https://etcd.example:2379'], { tmpDir: box.tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'etcd.yaml'))).toBe(false);
    for (const o of objectsOf(out).filter((x) => x.kind !== 'ConfigMap' && x.kind !== 'Service'))
      expect(container(o).args[container(o).args.indexOf('--etcd') + 1]).toBe('https://etcd.example:2379');
  });

  it('--platform cpu: no GPU requests (for clusters without GPUs: kind, k3s)', async () => {
    const out = join(box.root, 'cpu');
    const r = await runCli(['k8s', EXAMPLES[0]![1], '--out', out, '--platform', 'cpu', '--engine', 'reference'], {
      tmpDir: box.tmp,
    });
    expect(r.code, r.stderr).toBe(0);
    for (const o of objectsOf(out).filter((x) => x.kind === 'StatefulSet' && x.metadata.name.includes('-agent-')))
      expect(container(o).resources).toBeUndefined();
  });

  it('half the TLS flags, or a platform without a device plugin here, is a usage error (exit 2)', async () => {
    const out = join(box.root, 'bad');
    const [tls, rocm] = await Promise.all([
      runCli(['k8s', EXAMPLES[0]![1], '--out', out, '--tls-cert', '/nonexistent'], { tmpDir: box.tmp }),
      runCli(['k8s', EXAMPLES[0]![1], '--out', out, '--platform', 'rocm'], { tmpDir: box.tmp }),
    ]);
    expect([tls.code, rocm.code]).toEqual([2, 2]);
    expect(tls.stderr).toContain('needs --tls-cert, --tls-key and --tls-ca together');
    expect(rocm.stderr).toContain('deploys on cuda or cpu');
  });
});
