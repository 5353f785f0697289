import { GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError, type Etcd3, type IOptions } from 'etcd3';
import { formatDuration, parseDurationMs } from '../config/duration.js';
import { loadStaticConfig } from '../config/static-load.js';
import { createEtcdClient, type EtcdSettings } from '../store/etcd-client.js';
import { UsageError } from './args.js';
import { EtcdUnreachableError } from './failure.js';

/** Flags of every command that talks to etcd. */
export const ETCD_FLAGS = {
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  config: { type: 'string', short: 'c' },
  timeout: { type: 'string' },
} as const;

/** The CLI's deadline per etcd call unless --timeout says otherwise: short, as etcdctl's, so an etcd that is away fails a command in seconds. */
const DEFAULT_TIMEOUT_MS = 3_000;

/** Where the endpoints come from when no flag names them, first set wins. */
const ENDPOINT_VARIABLES = ['MERIDIAN_ETCD_ENDPOINTS', 'ETCDCTL_ENDPOINTS'] as const;
const DEFAULT_ENDPOINT = 'http://127.0.0.1:2379';

/** Help lines for ETCD_FLAGS. */
export const ETCD_FLAGS_HELP = `      --etcd URL[,URL]     etcd endpoints; first set wins: --etcd, MERIDIAN_ETCD_ENDPOINTS,
                           ETCDCTL_ENDPOINTS, store.etcd of --config, ${DEFAULT_ENDPOINT}
      --etcd-prefix P      key prefix: --etcd-prefix, MERIDIAN_ETCD_PREFIX, --config, /meridian/
  -c, --config FILE        static configuration: etcd endpoints, credentials and TLS
      --timeout DURATION   deadline of each etcd call, e.g. 10s (default 3s)
`;

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

const noEvent = (): { dispose(): void } => ({ dispose: () => undefined });

/**
 * Each endpoint tried once per call (the pool hands the next one on each
 * attempt): the client's default of three tries would turn one etcd that never
 * answers into a wait of three deadlines, while a cluster with one member down
 * must still answer.
 */
function oncePerEndpoint(endpoints: number): GlobalPolicy {
  return {
    _altReturn: undefined as never,
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> => {
      const context = { signal: signal ?? new AbortController().signal };
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(context);
        } catch (err) {
          if (attempt >= endpoints || !(err instanceof Error) || !isRecoverableError(err)) throw err;
        }
      }
    },
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** Endpoints as etcdctl takes them (`host:port` means http://), each checked, joined with commas. */
function endpointList(text: string, source: string): string {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new UsageError(`${source}: no endpoint given`);
  return list
    .map((endpoint) => {
      const url = endpoint.includes('://') ? endpoint : `http://${endpoint}`;
      if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new UsageError(`${source}: "${endpoint}" is not an http:// or https:// URL (or host:port)`);
      return url;
    })
    .join(',');
}

/** The endpoints flags and environment name, or undefined to take the configuration's. */
function chosenEndpoints(values: EtcdFlagValues): string | undefined {
  if (values.etcd !== undefined) return endpointList(values.etcd, '--etcd');
  for (const name of ENDPOINT_VARIABLES) {
    const value = nonEmpty(process.env[name]);
    if (value !== undefined) return endpointList(value, name);
  }
  return values.config === undefined ? DEFAULT_ENDPOINT : undefined;
}

/** The parsed values of ETCD_FLAGS. */
export interface EtcdFlagValues {
  etcd?: string | undefined;
  'etcd-prefix'?: string | undefined;
  config?: string | undefined;
  timeout?: string | undefined;
}

/** The etcd settings: --config's store.etcd (credentials, TLS, timeouts) with the endpoints and prefix of flags or environment over it. */
export async function etcdSettings(values: EtcdFlagValues): Promise<EtcdSettings> {
  const prefix = values['etcd-prefix'] ?? nonEmpty(process.env.MERIDIAN_ETCD_PREFIX);
  const config = await loadStaticConfig(values.config, { etcd: chosenEndpoints(values), etcdPrefix: prefix });
  const settings = config.store.etcd;
  if (settings === undefined) throw new UsageError(`${values.config ?? 'the configuration'} has no store.etcd; pass --etcd URL or set MERIDIAN_ETCD_ENDPOINTS`);
  if (!settings.prefix.endsWith('/')) throw new UsageError('the etcd prefix must end with "/"');
  return settings;
}

/** A transport failure (nothing answered in time, or no connection) as the one line an operator needs. */
function unreachable(err: unknown, endpoints: readonly string[], timeoutMs: number): EtcdUnreachableError | null {
  const where = `cannot reach etcd at ${endpoints.join(',')}`;
  const hint = '(set --etcd or MERIDIAN_ETCD_ENDPOINTS)';
  if (err instanceof GRPCDeadlineExceededError) return new EtcdUnreachableError(`${where}: no answer within ${formatDuration(timeoutMs)} ${hint}`, err);
  if (!(err instanceof GRPCUnavailableError)) return null;
  const cause = /Last error: (?:Error: )?(connect [A-Z]+|[^.]+)/.exec(err.message)?.[1] ?? err.message.replace(/^\d+ UNAVAILABLE: /, '');
  return new EtcdUnreachableError(`${where}: ${cause.trim()} ${hint}`, err);
}

/**
 * Runs `work` with a client for the etcd the flags name, then closes it. Each
 * call is tried once per endpoint, each try within --timeout (the router's store.etcd timeouts are
 * for its long-lived watch), so an etcd that is down or silent fails the
 * command in seconds as one clear error.
 */
export async function withEtcd<T>(values: EtcdFlagValues, work: (client: Etcd3, prefix: string) => Promise<T>): Promise<T> {
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDurationMs(values.timeout);
  if (timeoutMs === null || timeoutMs <= 0) throw new UsageError(`--timeout: "${values.timeout ?? ''}" is not a duration such as 3s or 500ms`);
  const settings = await etcdSettings(values);
  const client = createEtcdClient(settings, {
    faultHandling: { global: oncePerEndpoint(settings.endpoints.length) },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
  });
  try {
    return await work(client, settings.prefix);
  } catch (err) {
    throw unreachable(err, settings.endpoints, timeoutMs) ?? err;
  } finally {
    client.close();
  }
}
