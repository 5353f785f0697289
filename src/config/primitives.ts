import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort, type HostPort } from '../net/address.js';
import { parseDurationMs } from './duration.js';
import { parseCidr, type Cidr } from '../net/prefix-map.js';

/** A duration string (`250ms`, `5s`, `2m`, `1h`) parsed into milliseconds. */
export const durationMs = z
  .string({ error: 'expected a duration string such as "250ms", "5s" or "2m"' })
  .transform((text, ctx): number => {
    const ms = parseDurationMs(text);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration such as "250ms", "5s" or "2m"` });
      return z.NEVER;
    }
    return ms;
  });

/** A strictly positive duration. */
export const positiveDurationMs = durationMs.refine((ms) => ms > 0, 'must be greater than 0');

/** Names of regions, services, routes and versions: safe as etcd key segments and metric labels. */
export const objectName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'names use letters, digits, ".", "_" and "-", start with a letter or digit, at most 63 characters');

/** A point on Earth in decimal degrees. */
export const location = z.strictObject({
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
});

/** A listen address: `host:port`, `[v6]:port` or `:port`; port 0 picks a free port. */
export const listenAddress = z.string().transform((text, ctx): HostPort => {
  const parsed = parseHostPort(text, { allowEmptyHost: true });
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** An upstream or resolver address: `host:port` or `[v6]:port` with a port in 1-65535. */
export const upstreamAddress = z.string().transform((text, ctx): HostPort => {
  const parsed = parseHostPort(text, { allowEmptyHost: false });
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** A CIDR block such as `10.0.0.0/8`; a bare address is a single host. */
export const cidr = z.string().transform((text, ctx): Cidr => {
  const parsed = parseCidr(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** An IP address literal of the given family. */
export function ipLiteral(family: 4 | 6): z.ZodString {
  return z.string().refine((text) => isIP(text) === family, { message: `expected an IPv${family} address` });
}

/** A non-negative integer weight. */
export const weight = z.int().min(0).max(1_000_000);
