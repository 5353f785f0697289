import cluster from 'node:cluster';
import { portSharing, startPrimary, workerCount } from '../cluster/primary.js';
import { runWorker } from '../cluster/worker.js';
import { loadStaticConfig } from '../config/static-load.js';
import { makeDemoCertificates } from '../demo/certificate.js';
import { startDemoRegions } from '../demo/regions.js';
import { startMeridian } from '../main.js';
import { createLogger, isLogFormat, LOG_FORMATS, LOG_LEVELS, prettyWanted } from '../observability/logger.js';
import { parseFlags, START_FLAGS, UsageError } from './args.js';
import { USAGE } from './help.js';
import { routeGrpcLogs } from '../store/grpc-log.js';

/** `meridian start` and `meridian demo`: run until SIGTERM/SIGINT, then stop gracefully and exit 0. */
export async function startCommand(argv: readonly string[], demo: boolean): Promise<number> {
  const { values } = parseFlags(argv, { ...START_FLAGS, regions: { type: 'string' } }, { min: 0, max: 0 });
  if (values.help === true) {
    process.stdout.write(demo ? USAGE.demo ?? '' : USAGE.start ?? '');
    return 0;
  }
  if (!demo && values.regions !== undefined) throw new UsageError('--regions is an option of "meridian demo"');
  const flagLevel = values['log-level'] ?? process.env.MERIDIAN_LOG_LEVEL;
  if (flagLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(flagLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const envFormat = process.env.MERIDIAN_LOG_FORMAT;
  if (envFormat !== undefined && envFormat !== '' && !isLogFormat(envFormat)) throw new UsageError(`MERIDIAN_LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}`);
  // Installed first: Node would otherwise answer SIGUSR1 by opening its inspector.
  let reopenLogs = (): void => undefined;
  process.on('SIGUSR1', () => reopenLogs());
  const config = await loadStaticConfig(values.config, {
    listen: values.listen,
    admin: values.admin,
    routes: values.routes,
    etcd: values.etcd,
    etcdPrefix: values['etcd-prefix'],
    dnsListen: values['dns-listen'],
    tlsListen: values['tls-listen'],
    nodeName: values['node-name'],
    region: values.region,
    workers: values.workers,
    accessLog: values['access-log'],
    accessLogDefault: demo ? 'stdout' : undefined,
  });
  const format = envFormat !== undefined && isLogFormat(envFormat) ? envFormat : config.log.format;
  const logger = createLogger(flagLevel ?? config.log.level ?? 'info', undefined, prettyWanted(format));
  routeGrpcLogs(logger);
  if (cluster.isWorker) {
    // A data-plane worker of a node with several: it runs until its primary tells it to drain.
    const id = cluster.worker?.id ?? 0;
    await runWorker(config, logger.child({ worker: id }), portSharing(config), id, workerCount(config));
    return new Promise<number>(() => undefined);
  }
  if (demo) await makeDemoCertificates(config, logger);
  // In etcd mode the table arrives later (meridian apply): the regions come from the file named for them.
  const regionsFile = values.regions ?? config.store.file;
  if (demo && regionsFile === undefined) logger.warn('no demo regions: with an etcd store, name the routing table file they serve with --regions FILE');
  const regions = demo && regionsFile !== undefined ? await startDemoRegions(regionsFile, logger, values.regions !== undefined) : null;
  let meridian;
  try {
    meridian = workerCount(config) > 1 ? await startPrimary(config, logger, portSharing(config)) : await startMeridian(config, { logger });
  } catch (err) {
    await regions?.close();
    throw err;
  }
  const running = meridian;
  reopenLogs = () => running.reopenLogs();
  await new Promise<void>((resolve) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting without waiting');
        process.exit(1);
      }
      logger.info({ signal }, 'signal received');
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await meridian.close();
  await regions?.close();
  return 0;
}

