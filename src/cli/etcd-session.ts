import { GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError, type Etcd3, type IOptions } from 'etcd3';
import { formatDuration, parseDurationMs } from '../config/duration.js';
import { createEtcdClient } from '../store/etcd-client.js';
import { UsageError } from './args.js';
import { etcdSettings, type EtcdFlagValues } from './etcd-flags.js';
import { EtcdUnreachableError } from './failure.js';

/** The CLI's deadline per etcd call unless --timeout says otherwise: short, as etcdctl's, so an etcd that is away fails a command in seconds. */
const DEFAULT_TIMEOUT_MS = 3_000;

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
