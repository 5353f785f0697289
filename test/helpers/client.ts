import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';

/** A response as a test client got it. */
export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/** Options of one test request. */
export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]> | string[];
  body?: string | Buffer;
  agent?: Agent | false;
  timeoutMs?: number;
}

/** Sends one HTTP request over a real socket with node:http (which lets tests send any header). */
export function send(port: number, options: RequestOptions = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: options.headers,
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString('utf8') });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** GET a JSON document. */
export async function getJson<T = Record<string, unknown>>(port: number, path: string): Promise<T> {
  const res = await send(port, { path });
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.text}`);
  return JSON.parse(res.text) as T;
}
