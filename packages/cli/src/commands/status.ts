import type { Logger } from 'pino';
import { OmniError } from '@omnistage/core';
import { EtcdDiscovery, type ReplicaRecord } from '@omnistage/core/cluster';
import type { CliValues } from '../args.js';

const age = (since: unknown): string =>
  typeof since === 'number' ? `${Math.max(0, Math.round((Date.now() - since) / 1000))}s` : '?';

/**
 * `omnistage status --etcd URL [--run ID]`: the head of a run (the newest one by default), its
 * hosts and its replicas with their state and age, as etcd has them now. `--json` prints them as
 * one object. Exit 1 when no head is published.
 */
export async function statusCommand(values: CliValues, _logger: Logger): Promise<number> {
  if (values.etcd === undefined)
    throw new OmniError('OMNI_USAGE', '`omnistage status` needs --etcd URL', {
      hint: 'e.g. omnistage status --etcd http://127.0.0.1:2379',
    });
  const discovery = await EtcdDiscovery.connect(values.etcd);
  try {
    const found = await discovery.readHead(values.run);
    if (found === null) {
      throw new OmniError(
        'OMNI_CLUSTER',
        `no head ${values.run === undefined ? '' : `for run ${values.run} `}is published in etcd at ${values.etcd}`,
        {
          hint: 'start `omnistage serve FILE --head --etcd URL`, or check --run',
        },
      );
    }
    const { head } = found;
    const hosts = await discovery.listHosts(head.run_id);
    const replicas = (await discovery.listReplicas(head.run_id)).sort(
      (a, b) => a.stage_id - b.stage_id || a.replica_id - b.replica_id,
    );
    // Where the head saw each attached replica's connection come from (the host's address).
    const attached = await discovery.listAttached(head.run_id);
    const peerOf = (r: ReplicaRecord): string =>
      attached.find(
        (a) => a.stage_id === r.stage_id && a.replica_id === r.replica_id && a.incarnation === r.incarnation,
      )?.peer ?? '-';
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ head, hosts, replicas: replicas.map((r) => ({ ...r, peer: peerOf(r) === '-' ? null : peerOf(r) })) })}\n`,
      );
      return 0;
    }
    const where = (h: Record<string, unknown>): string => (typeof h['address'] === 'string' ? `${h['address']}, ` : '');
    const lines = [
      `run ${head.run_id}: head on ${head.host_id} (control ${head.control}, config ${head.config_hash.slice(0, 12)}, up ${age(head.since)})`,
      `hosts: ${
        Object.keys(hosts).length === 0
          ? 'none'
          : Object.entries(hosts)
              .map(([id, h]) => `${id} (${where(h)}${age(h['since'])})`)
              .join(', ')
      }`,
      'stage  replica  host  state    age   peer                   incarnation',
      ...replicas.map(
        (r) =>
          `${String(r.stage_id).padEnd(6)} ${String(r.replica_id).padEnd(8)} ${r.host_id.padEnd(5)} ${r.state.padEnd(8)} ${age(r.since).padEnd(5)} ${peerOf(r).padEnd(22)} ${r.incarnation}`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await discovery.close();
  }
}
