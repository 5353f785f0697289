/**
 * The bench upstream when nginx is not installed: a node:http server that
 * answers every request with the same small body, reading any request body first.
 */
import { createServer } from 'node:http';
import { benchArgs, positiveInt } from '../lib/args.js';

const args = benchArgs(['port', 'size']);
const port = positiveInt('port', args.port, 9000);
const body = Buffer.alloc(positiveInt('size', args.size, 1024), 'm');

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
