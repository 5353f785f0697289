import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Runs the openssl CLI in `dir`. */
function openssl(dir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd: dir, timeout: 20_000 }, (err, _stdout, stderr) => (err === null ? resolve() : reject(new Error(`openssl ${args[0]}: ${stderr || err.message}`))));
  });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes a private CA (`NAME.pem`, `NAME.key`) in `dir`. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=Meridian test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

/** Makes a server certificate (`NAME.pem`, `NAME.key`) for `san`, signed by the CA `ca` of `dir`. */
async function makeServerCert(dir: string, name: string, ca: string, san: string): Promise<void> {
  await openssl(dir, ['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  await writeFile(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]);
}

/** Makes a self-signed server certificate (`NAME.pem`, `NAME.key`) for `san`. */
async function makeSelfSigned(dir: string, name: string, san: string): Promise<void> {
  await openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', `subjectAltName=${san}`, '-addext', 'basicConstraints=CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth']);
}

/** Certificates made for one test file by the openssl CLI in a temp dir. */
export interface TestCertificates {
  readonly dir: string;
  /** The private CA that signed `server`. */
  readonly caFile: string;
  /** Another private CA, which signed nothing the server presents. */
  readonly otherCaFile: string;
  /** The server's certificate (for `localhost` and 127.0.0.1) and key, PEM. */
  readonly cert: string;
  readonly key: string;
  /** A self-signed certificate for `localhost` and its key, PEM. */
  readonly selfSigned: { readonly cert: string; readonly key: string };
}

/** Makes a private CA, a second unrelated CA, and a server certificate for DNS:localhost and IP:127.0.0.1. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'meridian-tls-'));
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await makeServerCert(dir, 'server', 'ca', 'DNS:localhost,IP:127.0.0.1');
  await makeSelfSigned(dir, 'self', 'DNS:localhost,IP:127.0.0.1');
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    cert: await readFile(join(dir, 'server.pem'), 'utf8'),
    key: await readFile(join(dir, 'server.key'), 'utf8'),
    selfSigned: { cert: await readFile(join(dir, 'self.pem'), 'utf8'), key: await readFile(join(dir, 'self.key'), 'utf8') },
  };
}

/** A real HTTPS upstream on 127.0.0.1, port 0. */
export interface TlsUpstream {
  readonly port: number;
  readonly server: Server;
  /** Requests answered (health checks included). */
  requests: number;
  /** TLS connections accepted (handshakes completed). */
  handshakes: number;
  /** SNI names of the handshakes, in order ('' for none). */
  readonly serverNames: string[];
  /** Connections that carried requests other than Meridian's health checks. */
  readonly proxiedSockets: Set<Socket>;
  /** Replaces the request handler. */
  handle(fn: (req: IncomingMessage, res: ServerResponse) => void): void;
  close(): Promise<void>;
}

/** Starts an HTTPS upstream with the given certificate on `host` (a loopback address); it answers 200 `<label> <url>` by default. */
export async function startTlsUpstream(certs: { cert: string; key: string }, label = 'tls', host = '127.0.0.1'): Promise<TlsUpstream> {
  const sockets = new Set<Socket>();
  let handler = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': label }).end(`${label} ${req.url ?? ''}`);
  };
  const server = createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    upstream.requests++;
    if (req.headers['user-agent'] !== 'meridian-health-check') upstream.proxiedSockets.add(req.socket);
    req.resume();
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket & { servername?: string | false }) => {
    upstream.handshakes++;
    upstream.serverNames.push(typeof s.servername === 'string' ? s.servername : '');
  });
  // A client that refuses the certificate ends the handshake: not a server problem.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const upstream: TlsUpstream = {
    port: (server.address() as AddressInfo).port,
    server,
    requests: 0,
    handshakes: 0,
    serverNames: [],
    proxiedSockets: new Set(),
    handle(fn) {
      handler = fn;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  return upstream;
}
