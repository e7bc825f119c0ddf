import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext, type TlsOptions } from 'node:tls';
import { OmniError } from '../errors.js';
import { CONTROL_ENV } from './protocol.js';

/** The three PEM files of mutual TLS on a head's control port (`--tls-cert`, `--tls-key`, `--tls-ca`). */
export interface TlsFiles {
  /** This side's certificate (the head's server certificate, or an agent's client certificate). */
  cert: string;
  /** Its private key (unencrypted PEM, mode 0600). */
  key: string;
  /** The authority the other side's certificate must be signed by. */
  ca: string;
}

/** The files' contents once checked: what a TLS server or client is built from. */
export interface TlsMaterial {
  /** Absolute paths (replicas get these, never the key material). */
  files: TlsFiles;
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Which end of the control connection the certificate is for. */
export type TlsRole = 'server' | 'client';

const FLAG: Record<keyof TlsFiles, string> = { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca' };
const EKU = { server: '1.3.6.1.5.5.7.3.1', client: '1.3.6.1.5.5.7.3.2', any: '2.5.29.37.0' } as const;
const MAKE_HINT = 'make the CA and certificates as docs/scale-out.md ("Mutual TLS on the control port") shows';

function tlsError(which: keyof TlsFiles, file: string, problem: string, hint = MAKE_HINT): OmniError {
  return new OmniError('OMNI_TLS', `${FLAG[which]} ${file}: ${problem}`, {
    hint,
    context: { flag: FLAG[which], file },
  });
}

async function readPem(which: keyof TlsFiles, file: string): Promise<Buffer> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw tlsError(which, file, 'is not a file', `give ${FLAG[which]} the path of a PEM file`);
    // Like the cluster secret: a key others can read is a key others have.
    if (which === 'key' && (st.mode & 0o077) !== 0)
      throw tlsError(which, file, 'is readable by group or others', `chmod 600 ${file}`);
    return await readFile(file);
  } catch (err) {
    if (err instanceof OmniError) throw err;
    const e = err as NodeJS.ErrnoException;
    const problem =
      e.code === 'ENOENT'
        ? 'does not exist'
        : e.code === 'EACCES'
          ? 'cannot be read (permission denied)'
          : `cannot be read (${e.message})`;
    throw tlsError(
      which,
      file,
      problem,
      `check the path given to ${FLAG[which]} (relative paths resolve against the current directory) and its permissions`,
    );
  }
}

function parseCertificate(which: 'cert' | 'ca', file: string, pem: Buffer, now: number): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw tlsError(which, file, `is not a PEM certificate (${(err as Error).message})`);
  }
  if (Date.parse(cert.validFrom) > now)
    throw tlsError(which, file, `is not valid before ${cert.validFrom} (is this host's clock right?)`);
  if (Date.parse(cert.validTo) < now)
    throw tlsError(which, file, `expired on ${cert.validTo}`, `issue a new certificate; ${MAKE_HINT}`);
  return cert;
}

function parseKey(file: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const message = (err as Error).message;
    if (/passphrase/i.test(message))
      throw tlsError(
        'key',
        file,
        'is encrypted; omnistage needs an unencrypted key',
        `decrypt it: openssl pkey -in ${file} -out key.pem && chmod 600 key.pem`,
      );
    throw tlsError('key', file, `is not a PEM private key (${message})`);
  }
}

/** The certificate may be used for its role, and (a head's) names the address replicas dial. */
function checkUse(files: TlsFiles, cert: X509Certificate, role: TlsRole, host: string | undefined, why = ''): void {
  const usages = cert.keyUsage as string[] | undefined;
  if (usages !== undefined && !usages.includes(EKU[role]) && !usages.includes(EKU.any)) {
    throw tlsError(
      'cert',
      files.cert,
      `its extended key usage does not allow TLS ${role}s (${role === 'server' ? 'serverAuth' : 'clientAuth'} is missing)${why}`,
      `issue it with -addext extendedKeyUsage=${role === 'server' ? 'serverAuth' : 'clientAuth'}; ${MAKE_HINT}`,
    );
  }
  if (role !== 'server' || host === undefined || host === '0.0.0.0' || host === '::') return;
  const named = isIP(host) !== 0 ? cert.checkIP(host) : cert.checkHost(host);
  if (named === undefined) {
    throw tlsError(
      'cert',
      files.cert,
      `does not name ${host}, the address ${why === '' ? 'replicas dial' : 'other hosts dial'} (its names: ${cert.subjectAltName ?? cert.subject})${why}`,
      `issue it with -addext subjectAltName=${isIP(host) !== 0 ? 'IP' : 'DNS'}:${host}, or set --advertise to a name it has`,
    );
  }
}

/**
 * Reads and checks the TLS files before anything starts: each exists and is readable (the key
 * not by others), parses, is within its validity, the key is the certificate's, the CA is a CA,
 * the certificate may be used as `role` and (a server's) names `host`. Errors say which flag,
 * which file, what is wrong and how to fix it (`OMNI_TLS`, exit 2).
 */
export async function loadTlsFiles(
  given: TlsFiles,
  role: TlsRole,
  options: { host?: string; now?: number } = {},
): Promise<TlsMaterial> {
  const files: TlsFiles = { cert: resolve(given.cert), key: resolve(given.key), ca: resolve(given.ca) };
  const now = options.now ?? Date.now();
  const [certPem, keyPem, caPem] = await Promise.all([
    readPem('cert', files.cert),
    readPem('key', files.key),
    readPem('ca', files.ca),
  ]);
  const cert = parseCertificate('cert', files.cert, certPem, now);
  const ca = parseCertificate('ca', files.ca, caPem, now);
  if (!ca.ca)
    throw tlsError(
      'ca',
      files.ca,
      'is not a CA certificate (basicConstraints CA:FALSE)',
      "give --tls-ca the certificate of the authority that signed the other side's certificate",
    );
  if (!cert.checkPrivateKey(parseKey(files.key, keyPem))) {
    throw tlsError(
      'key',
      files.key,
      `is not the private key of ${files.cert}`,
      'give --tls-key the key the certificate was issued for',
    );
  }
  checkUse(files, cert, role, options.host);
  try {
    createSecureContext({ cert: certPem, key: keyPem, ca: caPem, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw tlsError('cert', files.cert, `cannot be used for TLS (${(err as Error).message})`);
  }
  return { files, cert: certPem, key: keyPem, ca: caPem };
}

/**
 * Checks that checked material may also be used as `role` for the data plane between hosts: an
 * agent serves its payloads (server, naming `host`), a head fetches from agents (client).
 */
export function checkTlsUse(material: TlsMaterial, role: TlsRole, host?: string): void {
  const why =
    role === 'server'
      ? ': this host also serves its payloads to other hosts (docs/scale-out.md, "Payloads across hosts")'
      : ': the head also fetches payloads from agents (docs/scale-out.md, "Payloads across hosts")';
  checkUse(material.files, new X509Certificate(material.cert), role, host, why);
}

/** A TLS server that requires a client certificate signed by the material's CA (control port, payload server). */
export function mutualTlsServerOptions(tls: TlsMaterial, handshakeTimeoutMs: number): TlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/** What a replica dialling a TLS control port needs in its environment: the file paths, never the key itself. */
export function tlsEnv(files: TlsFiles): Record<string, string> {
  return { [CONTROL_ENV.tlsCert]: files.cert, [CONTROL_ENV.tlsKey]: files.key, [CONTROL_ENV.tlsCa]: files.ca };
}
