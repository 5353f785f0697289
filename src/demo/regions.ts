import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { formatHostPort } from '../net/address.js';
import { readConfigFile } from '../config/document.js';
import { ConfigError } from '../config/issues.js';
import { validateRoutingDocument } from '../config/routing-document.js';
import { validateRoutingObjects } from '../config/routing-validate.js';
import { endpointProtocol } from '../config/upstream-protocol.js';
import { endpointTls } from '../config/upstream-tls.js';
import type { Logger } from '../observability/logger.js';

/** Demo upstreams started beside the router. */
export interface DemoRegions {
  readonly servers: readonly Server[];
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Who an address serves in the routing table: `service/version@region` labels. */
function demoEndpoints(document: unknown, strict: boolean): Map<string, { host: string; port: number; serves: string[] }> {
  const { doc } = validateRoutingObjects(document);
  // Judged whole, as `meridian validate` would: a file named for the demo alone must be right.
  const { issues } = strict ? validateRoutingDocument(document) : { issues: [] };
  if (issues.length > 0) throw new ConfigError(issues);
  const byAddress = new Map<string, { host: string; port: number; serves: string[] }>();
  for (const [service, spec] of Object.entries(doc.services)) {
    for (const [version, versionSpec] of Object.entries(spec.versions)) {
      for (const [region, endpoints] of Object.entries(versionSpec.endpoints)) {
        for (const ep of endpoints) {
          // Demo upstreams speak plaintext HTTP/1.1 only: a TLS or HTTP/2 endpoint needs a server of its own.
          if (!isLoopback(ep.address.host) || endpointTls(ep, versionSpec) !== null || endpointProtocol(ep, versionSpec) !== 'http1') continue;
          const key = formatHostPort(ep.address);
          const entry = byAddress.get(key) ?? { host: ep.address.host, port: ep.address.port, serves: [] };
          entry.serves.push(`${service}/${version}@${region}`);
          byAddress.set(key, entry);
        }
      }
    }
  }
  return byAddress;
}

/**
 * Starts one small HTTP server per loopback endpoint of the routing file. Each
 * answers with JSON naming its region, version and what it received, so the
 * router's choices can be seen with curl. With `strict` (a file named for the
 * demo alone, as in etcd mode) a file that cannot be read or holds an invalid
 * object is an error; otherwise it is the router's own routes file, whose
 * problems the router reports, and the valid objects get their servers.
 */
export async function startDemoRegions(routesFile: string, logger: Logger, strict = false): Promise<DemoRegions> {
  const read = readConfigFile(routesFile);
  const endpoints = demoEndpoints(await (strict ? read : read.catch(() => ({}))), strict);
  const servers: Server[] = [];
  for (const [address, { host, port, serves }] of endpoints) {
    const [first] = serves;
    const [, version = '', region = ''] = /^[^/]+\/([^@]+)@(.+)$/.exec(first ?? '') ?? [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          return;
        }
        const body = JSON.stringify({
          region,
          version,
          endpoint: address,
          serves,
          method: req.method,
          path: req.url,
          host: req.headers.host ?? null,
          forwardedFor: req.headers['x-forwarded-for'] ?? null,
          requestId: req.headers['x-request-id'] ?? null,
        });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) + 1 }).end(`${body}\n`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => resolve());
    });
    servers.push(server);
    logger.info({ address, serves }, 'demo region listening');
  }
  return {
    servers,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
