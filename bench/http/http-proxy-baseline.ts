/**
 * The baseline: node-http-proxy (the `http-proxy` package) with a keep-alive
 * agent, the way it is usually deployed. Unmaintained; kept here only to compare.
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';
import { benchArgs, positiveInt } from '../lib/args.js';

const args = benchArgs(['port', 'upstream']);
const proxy = httpProxy.createProxyServer({
  target: `http://${args.upstream ?? '127.0.0.1:9000'}`,
  agent: new Agent({ keepAlive: true, maxSockets: 128 }),
  xfwd: true,
});
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502).end();
  else res.destroy();
});
const server = createServer((req, res) => proxy.web(req, res));
server.listen(positiveInt('port', args.port, 9002), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
