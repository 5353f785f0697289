import { ConfigError } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';
import type { Locator } from './locator.js';
import { GeoDatabase, type GeoDatabaseState } from './mmdb.js';

/** Opens `geo.mmdb` and gives it to the locator; a file that is no MaxMind DB is a ConfigError at `geo.mmdb`. */
export async function attachGeoDatabase(path: string, locator: Locator, logger: Logger): Promise<GeoDatabase> {
  let database: GeoDatabase;
  try {
    database = await GeoDatabase.open(path, logger, () => locator.forget());
  } catch (err) {
    throw new ConfigError([{ path: 'geo.mmdb', message: (err as Error).message }]);
  }
  locator.useDatabase(database);
  logger.info(database.state(), 'geo database loaded');
  return database;
}

/** `geo.mmdb` as a part of a node: opened (and watched) on start, closed on stop; state for the admin view. */
export function geoDatabasePart(path: string | undefined, locator: Locator, logger: Logger): { name: string; start(): Promise<void>; stop(): Promise<void> | undefined; state(): GeoDatabaseState | null } {
  let database: GeoDatabase | null = null;
  return {
    name: 'geo database',
    async start() {
      if (path === undefined) return;
      database = await attachGeoDatabase(path, locator, logger);
      database.watch();
    },
    stop: () => database?.close(),
    state: () => database?.state() ?? null,
  };
}
