import { insideZone, type ZoneConfig } from '../config/static-schema.js';

/** One zone Meridian answers for with authority. */
export interface Zone {
  /** Lowercase, no trailing dot: `example.com`. */
  readonly name: string;
  /** Name server names, in configuration order (the first is the SOA MNAME). */
  readonly nameservers: readonly string[];
}

/** The addresses a name server name is answered with (A and AAAA, and glue). */
export interface HostAddresses {
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

/** The configured zones, found by the longest suffix of a name, and the addresses of their name servers. */
export class ZoneSet {
  readonly #zones = new Map<string, Zone>();
  readonly #hosts = new Map<string, HostAddresses>();
  /** Configuration that works but leaves something unanswerable, one sentence each (logged at start, shown in the state). */
  readonly warnings: readonly string[];

  constructor(zones: readonly ZoneConfig[]) {
    for (const z of zones) {
      this.#zones.set(z.name, Object.freeze({ name: z.name, nameservers: Object.freeze(z.nameservers.map((ns) => ns.name)) }));
      for (const ns of z.nameservers) {
        // The schema allows addresses only inside a zone, and the same ones wherever a name is listed.
        if (ns.ipv4.length + ns.ipv6.length > 0) this.#hosts.set(ns.name, Object.freeze({ ipv4: Object.freeze([...ns.ipv4]), ipv6: Object.freeze([...ns.ipv6]) }));
      }
    }
    const warnings: string[] = [];
    for (const z of this.#zones.values()) {
      for (const ns of z.nameservers) {
        if (!this.#hosts.has(ns) && this.find(ns) !== null) {
          warnings.push(`zone ${z.name}: name server ${ns} lies in a zone Meridian serves but has no addresses, so its A/AAAA queries get no answer here: give them as { name: ${ns}, ipv4: [...], ipv6: [...] }`);
        }
      }
    }
    this.warnings = Object.freeze([...new Set(warnings)]);
  }

  /** The deepest zone holding a lowercase name (no trailing dot), or null when the name is outside every zone. */
  find(name: string): Zone | null {
    let suffix = name;
    for (;;) {
      const zone = this.#zones.get(suffix);
      if (zone !== undefined) return zone;
      const dot = suffix.indexOf('.');
      if (dot < 0) return null;
      suffix = suffix.slice(dot + 1);
    }
  }

  /** The configured addresses of a lowercase name server name, or null when it has none. */
  addressesOf(name: string): HostAddresses | null {
    return this.#hosts.get(name) ?? null;
  }

  /** Whether a name server with addresses lies strictly below a lowercase name (so the name exists, RFC 8020). */
  hasNameserverBelow(name: string): boolean {
    for (const host of this.#hosts.keys()) if (host !== name && insideZone(host, name)) return true;
    return false;
  }

  /** Every zone, in configuration order. */
  list(): readonly Zone[] {
    return [...this.#zones.values()];
  }
}
