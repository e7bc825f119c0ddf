import { OmniError } from '@omnistage/core';
import { loadTlsFiles, type TlsMaterial, type TlsRole } from '@omnistage/core/cluster';
import type { CliValues } from './args.js';

const TLS_FLAGS = ['tls-cert', 'tls-key', 'tls-ca'] as const;

/**
 * `--tls-cert/--tls-key/--tls-ca` of `serve --head`, `up --head` (role `server`; `host` is the
 * address replicas dial, which the certificate must name) and `agent` (role `client`): all three or
 * none (half a set is a usage error), each file read and checked before anything starts.
 */
export async function tlsOptions(values: CliValues, role: TlsRole, host?: string): Promise<TlsMaterial | undefined> {
  const given = TLS_FLAGS.filter((flag) => values[flag] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length < TLS_FLAGS.length) {
    const missing = TLS_FLAGS.filter((flag) => values[flag] === undefined).map((flag) => `--${flag}`);
    throw new OmniError(
      'OMNI_USAGE',
      `mutual TLS needs --tls-cert, --tls-key and --tls-ca together; ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing`,
      {
        hint:
          role === 'server'
            ? "give the head its certificate (naming the address replicas dial), its key, and the CA that signed the agents' certificates"
            : "give the agent its client certificate, its key, and the CA that signed the head's certificate",
      },
    );
  }
  const files = { cert: values['tls-cert']!, key: values['tls-key']!, ca: values['tls-ca']! };
  return loadTlsFiles(files, role, host === undefined ? {} : { host });
}
