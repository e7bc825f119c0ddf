import type { AgentGroup } from './agent-groups.js';

/** What the manifests are made from: the plan's agent pods and the deployment choices. */
export interface ManifestInput {
  /** The pipeline file's name and text (the ConfigMap). */
  fileName: string;
  fileText: string;
  groups: readonly AgentGroup[];
  stageIds: readonly number[];
  image: string;
  /** `--etcd` of an existing cluster; undefined: a single-node etcd StatefulSet for trying it out. */
  etcd: string | undefined;
  drainTimeoutS: number;
  /** `cuda`: agents request `nvidia.com/gpu`; `cpu`: virtual devices, no GPU requests (kind, k3s). */
  platform: 'cuda' | 'cpu';
  engine: string | undefined;
  /** Mutual TLS on the control port: the Secret `omnistage-tls` holds cert.pem, key.pem and ca.pem. */
  tls: boolean;
}

/** A Kubernetes object as plain data. */
export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
};

export const APP = 'omnistage';
const CONFIG_DIR = '/etc/omnistage';
const LOCK_DIR = '/var/lib/omnistage/locks';
const HTTP_PORT = 8000;
const CONTROL_PORT = 7000;
/** After a drain, the replicas' teardown (SIGTERM, then SIGKILL after the grace period). */
const TEARDOWN_S = 30;
/** The time Services and load balancers take to drop a pod that stopped being ready, before it drains. */
const DEREGISTER_S = 5;
const ETCD_IMAGE = 'quay.io/coreos/etcd:v3.5.17';

const labels = (component: string) => ({ 'app.kubernetes.io/name': APP, 'app.kubernetes.io/component': component });

/** The downward API: the pod's own name and IP (host id and advertise address). */
const POD_ENV = [
  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
];

function etcdUrl(input: ManifestInput): string {
  return input.etcd ?? `http://${APP}-etcd:2379`;
}

/** Flags head and agents share: the file, etcd, the secret, TLS, the engine, the platform. */
function clusterArgs(input: ManifestInput, platform: 'cuda' | 'cpu'): string[] {
  return [
    `${CONFIG_DIR}/pipeline/${input.fileName}`,
    '--etcd',
    etcdUrl(input),
    '--cluster-secret-file',
    `${CONFIG_DIR}/cluster/secret`,
    '--host-id',
    '$(POD_NAME)',
    '--platform',
    platform,
    ...(input.engine === undefined ? [] : ['--engine', input.engine]),
    ...(input.tls ? ['--tls-cert', `${CONFIG_DIR}/tls/cert.pem`, '--tls-key', `${CONFIG_DIR}/tls/key.pem`] : []),
    ...(input.tls ? ['--tls-ca', `${CONFIG_DIR}/tls/ca.pem`] : []),
    '--log-format',
    'json',
  ];
}

function configVolumes(input: ManifestInput) {
  const volumes: Record<string, unknown>[] = [
    { name: 'pipeline', configMap: { name: `${APP}-pipeline` } },
    // 0400: the CLI refuses a secret file others can read.
    { name: 'cluster', secret: { secretName: `${APP}-cluster`, defaultMode: 0o400 } },
  ];
  const mounts: Record<string, unknown>[] = [
    { name: 'pipeline', mountPath: `${CONFIG_DIR}/pipeline`, readOnly: true },
    { name: 'cluster', mountPath: `${CONFIG_DIR}/cluster`, readOnly: true },
  ];
  if (input.tls) {
    volumes.push({ name: 'tls', secret: { secretName: `${APP}-tls`, defaultMode: 0o400 } });
    mounts.push({ name: 'tls', mountPath: `${CONFIG_DIR}/tls`, readOnly: true });
  }
  return { volumes, mounts };
}

/** Every stage with 0 replicas on the head: agents serve them all. */
function headOverrides(input: ManifestInput): string {
  return JSON.stringify(Object.fromEntries(input.stageIds.map((id) => [String(id), { num_replicas: 0 }])));
}

/** `serve --head` with no stage of its own, on fixed ports the head Service exposes. */
function headArgs(input: ManifestInput): string[] {
  return [
    'serve',
    // The head runs no replica (every stage has 0 here): it plans without GPUs.
    ...clusterArgs(input, 'cpu'),
    '--head',
    '--host',
    '0.0.0.0',
    '--port',
    String(HTTP_PORT),
    '--control-host',
    '0.0.0.0',
    '--control-port',
    String(CONTROL_PORT),
    '--advertise',
    `${APP}-head`,
    '--drain-timeout',
    String(input.drainTimeoutS),
    '--stage-overrides',
    headOverrides(input),
  ];
}

/**
 * The head's container: probes on the health routes, and a stop that drains. preStop waits until
 * Services dropped the pod (it turned unready), then SIGTERMs the CLI (pid 1) and waits for its
 * drain and teardown; the termination grace period covers all three.
 */
function headContainer(input: ManifestInput, mounts: Record<string, unknown>[]): Record<string, unknown> {
  return {
    name: 'head',
    image: input.image,
    // Exec form: the CLI is pid 1 and gets the kubelet's SIGTERM itself.
    command: ['omnistage'],
    args: headArgs(input),
    env: POD_ENV,
    ports: [
      { name: 'http', containerPort: HTTP_PORT },
      { name: 'control', containerPort: CONTROL_PORT },
    ],
    readinessProbe: { httpGet: { path: '/health/ready', port: 'http' }, periodSeconds: 5, failureThreshold: 2 },
    livenessProbe: {
      httpGet: { path: '/health', port: 'http' },
      periodSeconds: 10,
      failureThreshold: 3,
      initialDelaySeconds: 10,
    },
    lifecycle: {
      preStop: {
        exec: {
          command: [
            '/bin/sh',
            '-c',
            `sleep ${DEREGISTER_S}; kill -TERM 1; while kill -0 1 2>/dev/null; do sleep 1; done`,
          ],
        },
      },
    },
    volumeMounts: mounts,
  };
}

/** The head: one pod (a run has one head), and the Service clients and replicas reach it by. */
function head(input: ManifestInput): K8sObject[] {
  const { volumes, mounts } = configVolumes(input);
  const deployment: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${APP}-head`, labels: labels('head') },
    spec: {
      replicas: 1,
      // Never two heads of one run: the old one is gone before the new one starts.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: labels('head') },
      template: {
        metadata: { labels: labels('head') },
        spec: {
          terminationGracePeriodSeconds: DEREGISTER_S + input.drainTimeoutS + TEARDOWN_S,
          containers: [headContainer(input, mounts)],
          volumes,
        },
      },
    },
  };
  const service: K8sObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `${APP}-head`, labels: labels('head') },
    spec: {
      selector: labels('head'),
      ports: [
        { name: 'http', port: HTTP_PORT, targetPort: 'http' },
        { name: 'control', port: CONTROL_PORT, targetPort: 'control' },
      ],
    },
  };
  return [deployment, service];
}

/**
 * One StatefulSet per agent pod kind (stable pod names are stable host ids in etcd). The device
 * plugin gives the pod `gpus` GPUs and names them in NVIDIA_VISIBLE_DEVICES (their UUIDs); the
 * agent runs with CUDA_VISIBLE_DEVICES set to that list, so the plan maps the pod-local logical
 * ids 0..gpus-1 onto those UUIDs, replicas get their GPU's UUID, and the device locks in the
 * node's lock dir are named by UUID: unique on the node, whatever pod holds them.
 */
function agent(input: ManifestInput, group: AgentGroup): K8sObject {
  const { volumes, mounts } = configVolumes(input);
  const args = [
    'agent',
    ...clusterArgs(input, input.platform),
    '--stages',
    group.stages.join(','),
    '--replicas',
    String(group.replicasPerPod),
    '--advertise',
    '$(POD_IP)',
    '--lock-dir',
    LOCK_DIR,
    '--stage-overrides',
    JSON.stringify(group.deviceOverrides),
  ];
  const gpu = input.platform === 'cuda';
  const name = `${APP}-agent-${group.name}`;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, labels: labels(`agent-${group.name}`) },
    spec: {
      replicas: group.pods,
      serviceName: name,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels(`agent-${group.name}`) },
      template: {
        metadata: { labels: labels(`agent-${group.name}`) },
        spec: {
          terminationGracePeriodSeconds: TEARDOWN_S + 10,
          containers: [
            {
              name: 'agent',
              image: input.image,
              // `exec` keeps the CLI pid 1 once the device list is set.
              command: gpu
                ? ['/bin/sh', '-c', 'CUDA_VISIBLE_DEVICES="$NVIDIA_VISIBLE_DEVICES" exec omnistage "$@"', 'omnistage']
                : ['omnistage'],
              args,
              env: POD_ENV,
              ...(gpu ? { resources: { limits: { 'nvidia.com/gpu': group.gpus } } } : {}),
              volumeMounts: [...mounts, { name: 'locks', mountPath: LOCK_DIR }],
            },
          ],
          volumes: [
            ...volumes,
            // Host-wide, like on a machine: every omnistage on the node takes its device locks here.
            { name: 'locks', hostPath: { path: LOCK_DIR, type: 'DirectoryOrCreate' } },
          ],
        },
      },
    },
  };
}

/** A single-member etcd for trying it out (data in an emptyDir: it does not survive the pod). */
function etcd(): K8sObject[] {
  const name = `${APP}-etcd`;
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name, labels: labels('etcd') },
      spec: {
        replicas: 1,
        serviceName: name,
        selector: { matchLabels: labels('etcd') },
        template: {
          metadata: { labels: labels('etcd') },
          spec: {
            containers: [
              {
                name: 'etcd',
                image: ETCD_IMAGE,
                command: [
                  'etcd',
                  '--data-dir=/var/lib/etcd',
                  '--listen-client-urls=http://0.0.0.0:2379',
                  `--advertise-client-urls=http://${name}:2379`,
                ],
                ports: [{ name: 'client', containerPort: 2379 }],
                readinessProbe: { httpGet: { path: '/health', port: 'client' }, periodSeconds: 5 },
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/etcd' }],
              },
            ],
            volumes: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, labels: labels('etcd') },
      spec: { selector: labels('etcd'), ports: [{ name: 'client', port: 2379, targetPort: 'client' }] },
    },
  ];
}

function pipelineConfigMap(input: ManifestInput): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${APP}-pipeline`, labels: labels('pipeline') },
    data: { [input.fileName]: input.fileText },
  };
}

/** The manifest files (name → objects) of a kustomize base; the kustomization itself is {@link kustomization}. */
export function manifestFiles(input: ManifestInput): Map<string, K8sObject[]> {
  const files = new Map<string, K8sObject[]>([
    ['pipeline.yaml', [pipelineConfigMap(input)]],
    ['head.yaml', head(input)],
  ]);
  for (const g of input.groups) files.set(`agent-${g.name}.yaml`, [agent(input, g)]);
  if (input.etcd === undefined) files.set('etcd.yaml', etcd());
  return files;
}

/** `kustomization.yaml`: the manifest files, and the Secrets generated from files beside them. */
export function kustomization(resources: readonly string[], tls: boolean): Record<string, unknown> {
  return {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [...resources],
    secretGenerator: [
      { name: `${APP}-cluster`, files: ['secret=cluster-secret'] },
      ...(tls ? [{ name: `${APP}-tls`, files: ['cert.pem', 'key.pem', 'ca.pem'] }] : []),
    ],
    // Stable names: the workloads refer to the Secrets by name.
    generatorOptions: { disableNameSuffixHash: true },
  };
}
