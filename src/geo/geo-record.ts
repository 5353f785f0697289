import type { Location } from './distance.js';

/** What steering can use from one database record. */
export interface GeoFacts {
  readonly location: Location | null;
  readonly country: string | null;
}

type Fields = Readonly<Record<string, unknown>>;

function fields(value: unknown): Fields | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Fields) : null;
}

/** A coordinate stored as a number or as decimal text (CSV-built databases do both). */
function coordinate(value: unknown, limit: number): number | null {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  return Number.isFinite(n) && Math.abs(n) <= limit ? n : null;
}

function point(lat: unknown, lon: unknown): Location | null {
  const la = coordinate(lat, 90);
  const lo = coordinate(lon, 180);
  return la === null || lo === null ? null : { lat: la, lon: lo };
}

function countryCode(value: unknown): string | null {
  return typeof value === 'string' && /^[A-Za-z]{2}$/.test(value) ? value.toUpperCase() : null;
}

/**
 * Reads a record of the GeoIP2/GeoLite2 City or Country layout
 * (`location.latitude`, `country.iso_code`, `registered_country.iso_code`) or
 * the flat ip-location-db layout (`latitude`, `longitude`, `country_code`).
 */
export function geoFacts(record: unknown): GeoFacts {
  const r = fields(record);
  if (r === null) return { location: null, country: null };
  const nested = fields(r['location']);
  const location = nested !== null ? point(nested['latitude'], nested['longitude']) : point(r['latitude'], r['longitude']);
  const country =
    countryCode(fields(r['country'])?.['iso_code']) ?? countryCode(fields(r['registered_country'])?.['iso_code']) ?? countryCode(r['country_code']);
  return { location, country };
}
