import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { buildStaticConfig } from '../../src/config/static-load.js';
import { startMeridian, type Meridian } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';

/** A Meridian started in-process on port 0 with a temp routes file. */
export interface TestMeridian {
  readonly meridian: Meridian;
  readonly port: number;
  readonly adminPort: number;
  /** GeoDNS port (UDP and TCP), null without a dns section. */
  readonly dnsPort: number | null;
  readonly dir: string;
  readonly routesFile: string;
  /** Rewrites the routes file atomically (as editors that save by rename do). */
  writeRoutes(doc: unknown): Promise<void>;
  close(): Promise<void>;
}

/** Extra static configuration merged into the test defaults. */
export type StaticOverrides = Record<string, Record<string, unknown>>;

/** A pino destination that hands each JSON log line, parsed, to `onLine`. */
function logCollector(onLine: (line: Record<string, unknown>) => void): NodeJS.WritableStream {
  let buffered = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') onLine(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
}

/** Options of a test Meridian besides its configuration. */
export interface TestMeridianOptions {
  /** Directory for the routes file and snapshot (a new temp dir by default). */
  dir?: string;
  /** Receives every log line at info level and above (logs are silent otherwise). */
  onLog?: (line: Record<string, unknown>) => void;
}

/** Writes `doc` as YAML (or raw text when a string) to the routes file and starts Meridian on it. */
export async function startTestMeridian(routes: unknown, overrides: StaticOverrides = {}, options: TestMeridianOptions = {}): Promise<TestMeridian> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'meridian-test-')));
  const routesFile = join(dir, 'routes.yaml');
  const writeRoutes = async (doc: unknown): Promise<void> => {
    const temp = `${routesFile}.tmp`;
    await writeFile(temp, typeof doc === 'string' ? doc : stringify(doc));
    await rename(temp, routesFile);
  };
  await writeRoutes(routes);
  const raw: Record<string, Record<string, unknown>> = {
    node: { name: 'test-node' },
    proxy: { listen: '127.0.0.1:0', trustedProxies: ['127.0.0.0/8'], shutdownTimeout: '5s' },
    admin: { listen: '127.0.0.1:0' },
    store: { file: routesFile, snapshot: join(dir, 'last-good.json') },
  };
  for (const [section, values] of Object.entries(overrides)) raw[section] = { ...(raw[section] ?? {}), ...values };
  const config = buildStaticConfig(raw);
  const logger = options.onLog === undefined ? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent') : createLogger('info', logCollector(options.onLog));
  const meridian = await startMeridian(config, { logger, defaultMetrics: false });
  return {
    meridian,
    port: meridian.proxyAddress.port,
    adminPort: meridian.adminAddress.port,
    dnsPort: meridian.dnsAddress?.port ?? null,
    dir,
    routesFile,
    writeRoutes,
    close: () => meridian.close(),
  };
}

/** A one-service routing table: `web` on every host, each region's endpoints as given. */
export function simpleRoutes(endpoints: Record<string, (string | { address: string; weight?: number; drain?: boolean })[]>, service: Record<string, unknown> = {}): Record<string, unknown> {
  const locations: Record<string, { lat: number; lon: number }> = {
    'eu-west': { lat: 53.35, lon: -6.26 },
    'us-east': { lat: 38.9, lon: -77.04 },
    'ap-south': { lat: 19.08, lon: 72.88 },
  };
  return {
    regions: Object.fromEntries(Object.keys(endpoints).map((r) => [r, { location: locations[r] ?? { lat: 0, lon: 0 } }])),
    services: { web: { versions: { stable: { endpoints } }, ...service } },
    routes: { web: { pathPrefix: '/', service: 'web' } },
  };
}
