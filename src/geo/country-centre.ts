import { createRequire } from 'node:module';
import type { Countries } from 'world-countries';
import type { Location } from './distance.js';

let centres: ReadonlyMap<string, Location> | null = null;

/**
 * The approximate centre of a country by ISO 3166-1 alpha-2 code (from the
 * world-countries data set), or null for codes it does not know. The table is
 * built on first use: only nodes with an mmdb database ever need it.
 */
export function countryCentre(code: string): Location | null {
  if (centres === null) {
    // The package is CommonJS exporting its JSON; require keeps its types honest.
    const countries = createRequire(import.meta.url)('world-countries') as Countries;
    const table = new Map<string, Location>();
    for (const c of countries) table.set(c.cca2, Object.freeze({ lat: c.latlng[0], lon: c.latlng[1] }));
    centres = table;
  }
  return centres.get(code.toUpperCase()) ?? null;
}
