/** The routing table every Meridian candidate of the benches serves: one region, one service, one route to one upstream. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** Writes `routes.yaml` in `home` sending every request to `upstream` (`host:port`); returns its path. */
export function writeOneRouteTable(home: string, upstream: string): string {
  const path = join(home, 'routes.yaml');
  writeFileSync(
    path,
    stringify({
      regions: { local: { location: { lat: 51.5, lon: -0.1 } } },
      services: { bench: { versions: { stable: { endpoints: { local: [upstream] } } } } },
      routes: { all: { pathPrefix: '/', service: 'bench' } },
    }),
  );
  return path;
}

/**
 * Makes `home` a Meridian bench node: the one-route table to `upstream` and a
 * `meridian.yaml` with the bench's node and store, `proxy` and `admin` as
 * given (the admin listener defaults to a free loopback port). Returns the
 * configuration's path.
 */
export function writeMeridianHome(home: string, upstream: string, proxy: Record<string, unknown>, admin: Record<string, unknown> = { listen: '127.0.0.1:0' }): string {
  mkdirSync(home, { recursive: true });
  const routes = writeOneRouteTable(home, upstream);
  const config = join(home, 'meridian.yaml');
  writeFileSync(
    config,
    stringify({
      node: { name: 'bench', region: 'local', location: { lat: 51.5, lon: -0.1 } },
      proxy,
      admin,
      store: { file: routes, snapshot: join(home, 'last-good.json') },
    }),
  );
  return config;
}
