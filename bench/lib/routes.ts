/** The routing table every Meridian candidate of the benches serves: one region, one service, one route to one upstream. */
import { writeFileSync } from 'node:fs';
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
