import { setLogger } from '@grpc/grpc-js';
import type { Logger } from '../observability/logger.js';

/** Least time between two lines of the same gRPC complaint. */
const REPEAT_MS = 60_000;

/** What gRPC says beyond its complaint's first words (addresses, intervals), left out when telling complaints apart. */
function complaintOf(message: string): string {
  return message.replace(/^[EID] /, '').slice(0, 48);
}

/**
 * Routes what the gRPC library under the etcd client prints (by default
 * `E <message>` lines on stderr, such as "rejected by server because of excess
 * pings") into the process log: errors as warnings with `component: grpc`, each
 * complaint at most once a minute; its info and debug lines at debug. Left
 * alone when GRPC_VERBOSITY or GRPC_TRACE (or their GRPC_NODE_ forms) is set:
 * whoever set them wants gRPC's own output.
 */
export function routeGrpcLogs(logger: Logger, env: NodeJS.ProcessEnv = process.env): boolean {
  if ([env.GRPC_VERBOSITY, env.GRPC_TRACE, env.GRPC_NODE_VERBOSITY, env.GRPC_NODE_TRACE].some((v) => v !== undefined && v !== '')) return false;
  const last = new Map<string, number>();
  const text = (args: unknown[]): string => args.map(String).join(' ');
  setLogger({
    error(...args: unknown[]) {
      const message = text(args);
      const key = complaintOf(message);
      const now = Date.now();
      if (now - (last.get(key) ?? Number.NEGATIVE_INFINITY) < REPEAT_MS) return;
      last.set(key, now);
      logger.warn({ component: 'grpc', detail: message }, `gRPC (etcd client): ${key}`);
    },
    info(...args: unknown[]) {
      logger.debug({ component: 'grpc' }, text(args));
    },
    debug(...args: unknown[]) {
      logger.debug({ component: 'grpc' }, text(args));
    },
  });
  return true;
}
