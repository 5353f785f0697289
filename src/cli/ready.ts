import { request } from 'node:http';
import { readConfigFile } from '../config/document.js';
import { ConfigError, formatIssue } from '../config/issues.js';
import { durationMs, listenAddress } from '../config/primitives.js';
import { formatHostPort, type HostPort } from '../net/address.js';
import { parseFlags, UsageError } from './args.js';
import { USAGE } from './help.js';

/** Where `admin.listen` points when neither the file nor --admin says: the schema's default. */
const DEFAULT_ADMIN = '127.0.0.1:9901';
/** How long the whole check may take by default: a probe must answer well inside its runner's own timeout. */
const DEFAULT_TIMEOUT = '2s';

/** Where a client reaches a listener: a wildcard bind is reached on loopback of the same family. */
export function probeAddress(listen: HostPort): HostPort {
  if (listen.host === '0.0.0.0') return { host: '127.0.0.1', port: listen.port };
  if (listen.host === '::') return { host: '::1', port: listen.port };
  return listen;
}

type Schema<T> = { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: readonly { message: string }[] } } };

/** The first problem of `value`, or its parsed form. */
function check<T>(schema: Schema<T>, value: unknown): T | { problem: string } {
  const result = schema.safeParse(value);
  return result.success ? result.data : { problem: result.error.issues[0]?.message ?? 'invalid' };
}

/** A flag's value, parsed; a bad one is a usage error. */
function flagValue<T extends object | number>(schema: Schema<T>, value: string, flag: string): T {
  const result = check(schema, value);
  if (typeof result === 'object' && 'problem' in result) throw new UsageError(`${flag}: ${result.problem}`);
  return result;
}

/**
 * The admin address to probe: --admin, else the file's `admin.listen`, else the
 * default. Only that field is read: the node itself judges the rest of the file,
 * and a probe must not fail for a field it does not use (a token given by env).
 */
async function adminAddress(file: string | undefined, flag: string | undefined): Promise<HostPort> {
  const where = file === undefined ? 'admin.listen' : `${file}: admin.listen`;
  let listen: HostPort;
  if (flag !== undefined) listen = flagValue(listenAddress, flag, '--admin');
  else {
    const raw = file === undefined ? {} : await readConfigFile(file);
    const admin = isMapping(raw) ? raw.admin : undefined;
    const result = check(listenAddress, (isMapping(admin) ? admin.listen : undefined) ?? DEFAULT_ADMIN);
    if ('problem' in result) throw new ConfigError([{ path: where, message: result.problem }]);
    listen = result;
  }
  if (listen.port === 0) throw new ConfigError([{ path: flag === undefined ? where : '--admin', message: 'port 0 is picked by the system at start: give the port the node listens on' }]);
  return listen;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** GETs /readyz; resolves with the status and the first line of the body, or rejects with why it could not. */
function getReadyz(address: HostPort, timeoutMs: number): Promise<{ status: number; line: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address.host, port: address.port, path: '/readyz', method: 'GET', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        // The answer is one short line; more is not read.
        if (body.length < 512) body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, line: body.split('\n')[0]?.trim() ?? '' }));
      res.on('error', reject);
    });
    // One deadline for connecting, sending and reading the whole answer.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end();
  });
}

/** `meridian ready`: exit 0 when the node's /readyz answers 200, else 1 with one line saying why (for HEALTHCHECK and exec probes). */
export async function readyCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' }, admin: { type: 'string' }, timeout: { type: 'string' } }, { min: 0, max: 0 });
  if (values.help === true) {
    process.stdout.write(USAGE.ready ?? '');
    return 0;
  }
  const timeoutMs = flagValue(durationMs, values.timeout ?? DEFAULT_TIMEOUT, '--timeout');
  if (timeoutMs <= 0) throw new UsageError('--timeout must be above 0');
  let address: HostPort;
  try {
    address = probeAddress(await adminAddress(values.config, values.admin));
  } catch (err) {
    // A probe answers 0 or 1 (Docker reserves 2): a file it cannot use is "not ready", said in one line.
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`meridian ready: ${err.issues.map(formatIssue).join('; ')}\n`);
    return 1;
  }
  const where = formatHostPort(address);
  try {
    const { status, line } = await getReadyz(address, timeoutMs);
    if (status === 200) {
      process.stdout.write(`ready (${where})\n`);
      return 0;
    }
    process.stderr.write(`meridian ready: ${line === '' ? 'not ready' : line} (${status} from ${where}/readyz)\n`);
  } catch (err) {
    process.stderr.write(`meridian ready: cannot reach the admin listener at ${where}: ${(err as Error).message}\n`);
  }
  return 1;
}
