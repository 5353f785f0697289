import type { Route, RouteLookup } from './table.js';

interface PathRule {
  readonly prefix: string;
  readonly route: Route;
}

function byLongestPrefix(a: PathRule, b: PathRule): number {
  return b.prefix.length - a.prefix.length || (a.route.name < b.route.name ? -1 : 1);
}

function firstMatch(rules: readonly PathRule[], url: string): Route | null {
  for (const rule of rules) if (url.startsWith(rule.prefix)) return rule.route;
  return null;
}

/**
 * Normalises a Host header for matching: lowercase, port and trailing dot removed.
 * IPv6 literals keep their brackets.
 */
export function normaliseHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    end = close < 0 ? end : close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (host.charCodeAt(end - 1) === 46 /* . */) end--;
  const bare = end === host.length ? host : host.slice(0, end);
  return bare.toLowerCase();
}

/**
 * Finds the route for a host and path: exact host first, then the longest
 * `*.suffix` wildcard, then routes without hosts; within each, the longest path
 * prefix. A tier whose paths do not match falls through to the next one.
 * Built once per routing table; matching builds no regular expressions.
 */
export class RouteMatcher implements RouteLookup {
  readonly #exact = new Map<string, PathRule[]>();
  /** Keyed by the suffix including its leading dot: `.example.net`. */
  readonly #wildcard = new Map<string, PathRule[]>();
  readonly #anyHost: PathRule[] = [];

  constructor(routes: Iterable<Route>) {
    for (const route of routes) {
      const rule = { prefix: route.spec.pathPrefix, route };
      if (route.spec.hosts.length === 0) this.#anyHost.push(rule);
      for (const host of route.spec.hosts) {
        const [map, key] = host.startsWith('*.') ? [this.#wildcard, host.slice(1)] : [this.#exact, host];
        const rules = map.get(key) ?? [];
        rules.push(rule);
        map.set(key, rules);
      }
    }
    for (const rules of [...this.#exact.values(), ...this.#wildcard.values(), this.#anyHost]) rules.sort(byLongestPrefix);
  }

  /**
   * The route a bare host name stands for (GeoDNS): its exact entry, else the
   * longest matching wildcard, taking the shortest path prefix (the most
   * general route of that host). Routes without hosts are not named by any
   * host, so they are never returned. The name must be lowercase, without a
   * trailing dot.
   */
  routeForHost(host: string): Route | null {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return (exact[exact.length - 1] as PathRule).route;
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const rules = this.#wildcard.get(host.slice(dot));
      if (rules !== undefined) return (rules[rules.length - 1] as PathRule).route;
    }
    return null;
  }

  /** Whether some route host lies below the name (so the name exists in DNS, without records of its own). */
  hasHostsBelow(name: string): boolean {
    const suffix = `.${name}`;
    for (const host of this.#exact.keys()) if (host.endsWith(suffix)) return true;
    for (const wildcardSuffix of this.#wildcard.keys()) if (wildcardSuffix === suffix || wildcardSuffix.endsWith(suffix)) return true;
    return false;
  }

  /** The route for a raw Host header (or undefined) and a request target starting with `/`, or null. */
  match(hostHeader: string | undefined, url: string): Route | null {
    if (hostHeader !== undefined && hostHeader !== '') {
      const host = normaliseHost(hostHeader);
      const exact = this.#exact.get(host);
      if (exact !== undefined) {
        const route = firstMatch(exact, url);
        if (route !== null) return route;
      }
      if (this.#wildcard.size > 0) {
        for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
          const rules = this.#wildcard.get(host.slice(dot));
          if (rules !== undefined) {
            const route = firstMatch(rules, url);
            if (route !== null) return route;
          }
        }
      }
    }
    return firstMatch(this.#anyHost, url);
  }
}
