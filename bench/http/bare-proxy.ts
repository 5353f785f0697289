/**
 * The Node ceiling: the least a correct undici reverse proxy does. One Pool,
 * raw headers minus the hop-by-hop ones, bodies streamed both ways, 502 on error.
 */
import { createServer } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { benchArgs, positiveInt } from '../lib/args.js';

const args = benchArgs(['port', 'upstream']);
const pool = new Pool(`http://${args.upstream ?? '127.0.0.1:9000'}`, { connections: 128, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

const server = createServer((req, res) => {
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!HOP.has((req.rawHeaders[i] as string).toLowerCase())) headers.push(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  const handler: Dispatcher.DispatchHandler = {
    onConnect() {},
    onHeaders(status, raw, resume) {
      const out: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toString('latin1');
        if (!HOP.has(name.toLowerCase())) out.push(name, raw[i + 1]!.toString('latin1'));
      }
      res.writeHead(status, out);
      res.on('drain', resume);
      return true;
    },
    onData: (chunk) => res.write(chunk),
    onComplete: () => res.end(),
    onError: () => (res.headersSent ? res.destroy() : res.writeHead(502).end()),
  };
  pool.dispatch({ path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null }, handler);
});
server.listen(positiveInt('port', args.port, 9001), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
