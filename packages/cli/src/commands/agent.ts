import type { Logger } from 'pino';
import { planPipeline } from '@omnistage/core';
import { Agent, EtcdDiscovery, LocalProcessLauncher, fingerprintHash, pipelineFingerprint } from '@omnistage/core/cluster';
import type { CliValues } from '../args.js';
import { agentOptions, clusterOptions } from '../cluster-options.js';
import { openSession } from '../session.js';
import { tlsOptions } from '../tls-options.js';
import { onStopSignals } from './up.js';

/**
 * `omnistage agent FILE --etcd URL --stages 1[,3]`: the headless launcher of one host. Runs until
 * SIGINT/SIGTERM (exit 0, after telling the head its replicas leave and revoking its lease) or
 * until the head has been gone for longer than the lease TTL (exit 1, its replicas stopped).
 */
export async function agentCommand(file: string, values: CliValues, logger: Logger): Promise<number> {
  const { stages, replicas } = agentOptions(values);
  const cluster = await clusterOptions(values, 'agent');
  const tls = await tlsOptions(values, 'client');
  const session = await openSession(file, values, logger, 'launch');
  const fingerprint = pipelineFingerprint(session.config);
  const discovery = await EtcdDiscovery.connect(cluster.etcd);
  let agent: Agent | null = null;
  let stopping = false;
  const offSignals = onStopSignals((signal) => {
    if (stopping) return;
    stopping = true;
    logger.info(`received ${signal}: stopping this host's replicas and revoking its lease`);
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
      fingerprint,
      configHash: fingerprintHash(fingerprint),
      plan: (runId) => planPipeline(session.omni, session.config, { ...session.planOptions, runId }),
      ttlS: cluster.ttlS,
      ...(tls === undefined ? {} : { tls: tls.files }),
      ...(values.run === undefined ? {} : { runId: values.run }),
      logger,
    });
    logger.info(`agent ${cluster.hostId}: serving stage(s) ${stages.join(', ')} (${replicas} replica(s) each) for run ${agent.head.run_id}, head at ${agent.head.control}`);
    if (stopping) await agent.stop();
    await agent.done;
    return 0;
  } finally {
    offSignals();
    await discovery.close();
  }
}
