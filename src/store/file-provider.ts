import { resolve } from 'node:path';
import type { RoutingParser } from '../config/routing-parser.js';
import type { Logger } from '../observability/logger.js';
import { FileStore } from './file.js';
import type { RoutingProvider } from './provider.js';

/** The routes file as a provider: read at start, then watched; the admin reload reads it again. */
export function fileProvider(file: string, parser: RoutingParser, logger: Logger): RoutingProvider {
  const store = new FileStore(file, logger, parser);
  let emit: Parameters<RoutingProvider['start']>[0] | null = null;
  return {
    kind: 'file',
    boot: { answerWithinMs: null, whenRefused: 'serve-last-good', silence: '' },
    start(to) {
      emit = to;
      void store.read().then(async (first) => {
        await to(first);
        store.watch(to);
      });
    },
    reload: async () => (emit === null ? 'unchanged' : (await emit(await store.read())).result),
    state: () => ({ kind: 'file', path: resolve(file) }),
    close: () => store.close(),
  };
}
