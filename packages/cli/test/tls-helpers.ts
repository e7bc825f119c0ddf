/**
 * Throw-away certificates for the mutual-TLS tests, made with the `openssl` CLI (OpenSSL ≥ 3.0,
 * `req -x509 -CA`), as docs/scale-out.md tells users to: a CA, a server certificate for
 * 127.0.0.1, a client certificate, a second unrelated CA with a client certificate of its own,
 * and an expired client certificate. EC P-256 keys: fast to make.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Whether `openssl` is on the PATH (.ci/run installs it). */
export const HAS_OPENSSL = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

/** A certificate and its key (PEM files). */
export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCerts {
  /** The CA head and agents trust. */
  ca: CertPair;
  /** The head's certificate: serverAuth (its control port and payload server), clientAuth (it fetches payloads), IP:127.0.0.1. */
  server: CertPair;
  /** An agent's certificate: clientAuth, and serverAuth for 127.0.0.1–4 (its payload server). */
  client: CertPair;
  /** A certificate of the right CA for clientAuth only: it cannot serve payloads, so no agent may use it. */
  clientOnly: CertPair;
  /** An unrelated CA, and a client certificate it signed. */
  otherCa: CertPair;
  rogueClient: CertPair;
  /** A client certificate of the right CA that expired yesterday. */
  expiredClient: CertPair;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): CertPair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  openssl(['req', '-x509', ...EC, '-keyout', pair.key, '-out', pair.cert, '-days', '2', '-subj', `/CN=${name}`]);
  return pair;
}

function makeLeaf(dir: string, name: string, ca: CertPair, ext: string[]): CertPair {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const addext = ['basicConstraints=CA:FALSE', ...ext].flatMap((e) => ['-addext', e]);
  openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    pair.key,
    '-out',
    pair.cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    ...addext,
  ]);
  return pair;
}

/** Makes every certificate of {@link TestCerts} in `dir` (keys mode 0600). */
export function makeTestCerts(dir: string): TestCerts {
  const ca = makeCa(dir, 'ca');
  const otherCa = makeCa(dir, 'other-ca');
  const client = ['extendedKeyUsage=clientAuth'];
  const hosts = 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4';
  const certs: TestCerts = {
    ca,
    server: makeLeaf(dir, 'head', ca, ['extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=IP:127.0.0.1']),
    client: makeLeaf(dir, 'agent', ca, ['extendedKeyUsage=clientAuth,serverAuth', hosts]),
    clientOnly: makeLeaf(dir, 'client-only', ca, client),
    otherCa,
    rogueClient: makeLeaf(dir, 'rogue', otherCa, client),
    expiredClient: { cert: join(dir, 'expired.crt'), key: join(dir, 'expired.key') },
  };
  // `req -x509` refuses a non-positive -days; `x509 -req -days -1` makes one that ended yesterday.
  const csr = join(dir, 'expired.csr');
  openssl(['req', '-new', ...EC, '-keyout', certs.expiredClient.key, '-out', csr, '-subj', '/CN=expired']);
  const ext = join(dir, 'client.ext');
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\n');
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-days',
    '-1',
    '-extfile',
    ext,
    '-out',
    certs.expiredClient.cert,
  ]);
  for (const pair of Object.values(certs) as CertPair[]) chmodSync(pair.key, 0o600);
  return certs;
}

/** The three flags for `pair` signed by, and trusting, `ca`. */
export function tlsFlags(pair: CertPair, ca: CertPair): string[] {
  return ['--tls-cert', pair.cert, '--tls-key', pair.key, '--tls-ca', ca.cert];
}
