import { readFileSync } from 'node:fs';
import { Agent, get } from 'node:https';
import { get as getPlain } from 'node:http';
import { rootCertificates } from 'node:tls';
import acme from 'acme-client';
import type { StoredCertificate } from './store.js';

/** Which challenge proves control of a name. */
export type ChallengeType = 'http-01' | 'tls-alpn-01';

/** Where pending challenges are published, for every listener of the node to answer them. */
export interface ChallengeSink {
  /** Answers the HTTP-01 `token` with `keyAuthorization` (null: stop). Resolves once every listener answers it. */
  http(token: string, keyAuthorization: string | null): Promise<void>;
  /** Presents `pem` to TLS-ALPN-01 validation connections for `name` (null: stop). Resolves once every listener presents it. */
  alpn(name: string, pem: StoredCertificate | null): Promise<void>;
}

/** How long one request to the ACME server may take. */
const REQUEST_TIMEOUT_MS = 30_000;

/** acme-client's own retries of a failed request (network error, 429, 5xx): few and short, since the renewer retries whole orders with its own backoff. */
const CLIENT_RETRIES = { retryMaxAttempts: 2, retryDefaultDelay: 1 };

/**
 * acme-client's HTTP settings: a deadline per request, few retries, and trust
 * for the directory's HTTPS (the system roots plus `caFile`, for private ACME
 * servers). acme-client keeps one HTTP client per process, and a node talks
 * to one directory, so they are set there once.
 */
export function configureAcmeClient(caFile: string | undefined): void {
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  const defaults = acme.axios.defaults as { acmeSettings?: Record<string, number> };
  defaults.acmeSettings = { ...defaults.acmeSettings, ...CLIENT_RETRIES };
  if (caFile === undefined) return;
  acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, readFileSync(caFile, 'utf8')], keepAlive: false });
}

/** A new account key (ECDSA P-256), PEM. */
export async function newAccountKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey()).toString();
}

/** What ordering one certificate needs. */
export interface OrderRequest {
  readonly directory: string;
  readonly email: string;
  readonly accountKey: string;
  readonly challenge: ChallengeType;
  readonly name: string;
  readonly sink: ChallengeSink;
}

/**
 * Orders a certificate for one name (RFC 8555 through acme-client): account
 * (created or found by its key, agreeing to the CA's terms), a new ECDSA
 * P-256 key and CSR, the configured challenge answered by the node's
 * listeners, then the issued chain. The challenge is withdrawn whatever happens.
 */
export async function orderCertificate(request: OrderRequest): Promise<StoredCertificate> {
  try {
    return await order(request);
  } catch (err) {
    // acme-client loses the cause of a network failure (it reports a TypeError about a missing response): find it.
    if (err instanceof TypeError && /reading 'config'/.test(err.message)) throw new Error(`cannot reach the ACME server ${request.directory}: ${await probe(request.directory)}`);
    throw err;
  }
}

/** What fetching `url` fails with (or "answers" when it does not fail), with the trust acme-client uses. */
function probe(url: string): Promise<string> {
  return new Promise((resolve) => {
    const agent = acme.axios.defaults.httpsAgent as Agent | undefined;
    const req = url.startsWith('https:') ? get(url, { agent, timeout: REQUEST_TIMEOUT_MS }) : getPlain(url, { timeout: REQUEST_TIMEOUT_MS });
    req.on('response', (res) => {
      res.resume();
      resolve(`it answers ${res.statusCode ?? '?'} now; the request failed earlier`);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

async function order(request: OrderRequest): Promise<StoredCertificate> {
  const client = new acme.Client({ directoryUrl: request.directory, accountKey: request.accountKey, backoffAttempts: 8, backoffMin: 500, backoffMax: 10_000 });
  const key = (await acme.crypto.createPrivateEcdsaKey()).toString();
  const [, csr] = await acme.crypto.createCsr({ commonName: request.name, altNames: [request.name] }, key);
  const { sink, name } = request;
  const cert = await client.auto({
    csr,
    email: request.email,
    termsOfServiceAgreed: true,
    challengePriority: [request.challenge],
    // acme-client's own check fetches the name from here, which behind NAT or a port mapping tells nothing: the CA's validation decides.
    skipChallengeVerification: true,
    async challengeCreateFn(authz, challenge, keyAuthorization) {
      if (challenge.type === 'http-01') await sink.http(challenge.token, keyAuthorization);
      else {
        const alpnKey = await acme.crypto.createPrivateEcdsaKey();
        const [, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, alpnKey);
        await sink.alpn(name, { cert: alpnCert.toString(), key: alpnKey.toString() });
      }
    },
    async challengeRemoveFn(_authz, challenge) {
      if (challenge.type === 'http-01') await sink.http(challenge.token, null);
      else await sink.alpn(name, null);
    },
  });
  return { cert, key };
}
