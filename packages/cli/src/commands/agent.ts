import type { Logger } from 'pino';
import { planPipeline, type PipelineConfig } from '@omnistage/core';
import {
  Agent,
  EtcdDiscovery,
  LocalProcessLauncher,
  checkTlsUse,
  fingerprintHash,
  pipelineFingerprint,
} from '@omnistage/core/cluster';
import type { CliValues } from '../args.js';
import { agentOptions, checkHostAddress, clusterOptions, payloadPort } from '../cluster-options.js';
import { openSession } from '../session.js';
import { tlsOptions } from '../tls-options.js';
import { StopLifecycle } from '../lifecycle.js';
import { openEventsFile } from './up.js';

/** The pipeline as this host runs it: its stages with `--replicas` replicas each (mapped onto its devices as a local bring-up maps them). */
function hostConfig(config: PipelineConfig, stages: readonly number[], replicas: number): PipelineConfig {
  return {
    ...config,
    stages: config.stages.map((s) =>
      stages.includes(s.stage_id) ? { ...s, runtime: { ...s.runtime, num_replicas: replicas } } : s,
    ),
  };
}

/**
 * `omnistage agent FILE --etcd URL --stages 1[,3]`: the headless launcher of one host. Runs until
 * SIGINT/SIGTERM (exit 130/143, after telling the head its replicas leave and revoking its lease) or
 * until the head has been gone for longer than the lease TTL (exit 1, its replicas stopped).
 */
export async function agentCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const { stages, replicas, address } = agentOptions(values);
  if (address !== undefined) await checkHostAddress(address);
  const cluster = await clusterOptions(values, 'agent');
  const tls = await tlsOptions(values, 'client');
  // This host also serves its payloads to other hosts: its certificate must allow that, at its address.
  if (tls !== undefined) checkTlsUse(tls, 'server', address ?? '127.0.0.1');
  const port = payloadPort(values);
  const session = await openSession(file, values, logger, 'launch');
  const closeEvents = values.events ? openEventsFile(session, values.events) : () => {};
  const fingerprint = pipelineFingerprint(session.config);
  const discovery = await EtcdDiscovery.connect(cluster.etcd);
  let agent: Agent | null = null;
  const lifecycle = new StopLifecycle(logger, (stop) => {
    logger.info(`${stop.heard}: stopping this host's replicas and revoking its lease`);
    void agent?.stop();
  });
  try {
    agent = await Agent.start({
      discovery,
      secret: cluster.secret,
      hostId: cluster.hostId,
      stages,
      replicas,
      launcher: new LocalProcessLauncher(),
      driver: { hooks: session.omni.hooks, events: session.omni.events, logger, lockDir: session.omni.lockDir },
      ...(address === undefined ? {} : { address }),
      ...(session.stageInitTimeoutS === undefined ? {} : { stageInitTimeoutS: session.stageInitTimeoutS }),
      fingerprint,
      configHash: fingerprintHash(fingerprint),
      plan: (runId) =>
        planPipeline(session.omni, hostConfig(session.config, stages, replicas), {
          ...session.planOptions,
          runId,
          hostStages: stages,
          ...(address === undefined ? {} : { hostAddress: address }),
        }),
      ttlS: cluster.ttlS,
      ...(tls === undefined ? {} : { tls: tls.files, tlsMaterial: tls }),
      payloadPort: port,
      ...(values.run === undefined ? {} : { runId: values.run }),
      logger,
    });
    logger.info(
      `agent ${cluster.hostId}${address === undefined ? '' : ` on ${address}`}: serving stage(s) ${stages.join(', ')} (${replicas} replica(s) each) for run ${agent.head.run_id}, head at ${agent.head.control}, device locks in ${session.omni.lockDir}, payloads served at ${agent.payloadUrl}`,
    );
    if (address === undefined)
      logger.warn(
        { code: 'OMNI_WARN_PAYLOADS_LOOPBACK_ONLY' },
        'no --advertise: this host serves its payloads on 127.0.0.1 only, so consumers on other hosts cannot fetch what its replicas store',
      );
    if (lifecycle.request) await agent.stop();
    await agent.done;
    return 0;
  } finally {
    lifecycle.close();
    closeEvents();
    await discovery.close();
  }
}
