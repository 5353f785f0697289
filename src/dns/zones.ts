/** One zone Meridian answers for with authority. */
export interface Zone {
  /** Lowercase, no trailing dot: `example.com`. */
  readonly name: string;
  readonly nameservers: readonly string[];
}

/** The configured zones, found by the longest suffix of a name. */
export class ZoneSet {
  readonly #zones = new Map<string, Zone>();

  constructor(zones: readonly { name: string; nameservers: readonly string[] }[]) {
    for (const z of zones) this.#zones.set(z.name, Object.freeze({ name: z.name, nameservers: Object.freeze([...z.nameservers]) }));
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

  /** Every zone, in configuration order. */
  list(): readonly Zone[] {
    return [...this.#zones.values()];
  }
}
