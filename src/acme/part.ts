import { isIP } from 'node:net';
import { join } from 'node:path';
import type { AcmeConfig, StaticConfig } from '../config/static-schema.js';
import type { RoutingTable } from '../routing/table.js';
import { createEtcdClient } from '../store/etcd-client.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AcmeChallenges } from '../proxy/acme-challenges.js';
import type { LoadedCertificate } from '../proxy/certificates.js';
import { DiskAcmeStore } from './disk-store.js';
import { EtcdAcmeStore } from './etcd-store.js';
import type { ChallengeSink } from './order.js';
import { AcmeRenewer, type AcmeNames } from './renewer.js';
import { readEncryptionKey } from './sealed.js';
import type { AcmeStore } from './store.js';

/** Where a lone node keeps its ACME files: `storage`, or beside its snapshot. */
export function acmeStorageDir(config: StaticConfig, acme: AcmeConfig): string {
  return acme.storage ?? join('.meridian', config.node.name, 'acme');
}

/**
 * The names to hold certificates for: the configured list, else every exact
 * route host of the table in force (wildcards and IP addresses are skipped:
 * HTTP-01 and TLS-ALPN-01 cannot prove them).
 */
export function acmeNames(acme: AcmeConfig, table: () => RoutingTable | null): () => AcmeNames {
  if (acme.names !== undefined) {
    const names = [...new Set(acme.names)];
    return () => ({ names, skipped: [] });
  }
  return () => {
    const names = new Set<string>();
    const skipped = new Set<string>();
    for (const route of table()?.routes.values() ?? []) {
      for (const host of route.spec.hosts) {
        if (host.startsWith('*.') || isIP(host) !== 0 || host.includes('_')) skipped.add(host);
        else names.add(host);
      }
    }
    return { names: [...names].sort(), skipped: [...skipped].sort() };
  };
}

/**
 * The store of the configuration: etcd when the node reads its routes from
 * etcd (one account and one certificate per name for the fleet, with its own
 * client), else files on disk. Throws when the encryption key is unusable.
 */
export function acmeStore(config: StaticConfig, acme: AcmeConfig): AcmeStore {
  const etcd = config.store.etcd;
  if (etcd === undefined) return new DiskAcmeStore(acmeStorageDir(config, acme));
  const key = readEncryptionKey(acme.encryptionKey as string);
  return new EtcdAcmeStore(createEtcdClient(etcd), etcd.prefix, key, config.node.name);
}

/** What a node gives its ACME renewer. */
export interface AcmeDeps {
  /** The routing table in force (its hosts are the names when none are configured). */
  readonly table: () => RoutingTable | null;
  readonly sink: ChallengeSink;
  readonly install: (name: string, cert: LoadedCertificate) => void;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** The ACME renewer of a configuration with `proxy.tls.acme`, or null without one. */
export function acmeRenewer(config: StaticConfig, deps: AcmeDeps): AcmeRenewer | null {
  const tls = config.proxy.tls;
  const acme = tls?.acme;
  if (tls === undefined || acme === undefined) return null;
  return new AcmeRenewer({ config: acme, store: acmeStore(config, acme), names: acmeNames(acme, deps.table), minVersion: tls.minVersion, ...deps });
}

/** Challenges answered by this process's own listeners (a node without workers). */
export function localChallengeSink(board: AcmeChallenges): ChallengeSink {
  return {
    async http(token, keyAuthorization) {
      board.setHttp(token, keyAuthorization);
    },
    async alpn(name, pem) {
      board.setAlpn(name, pem);
    },
  };
}

/** The renewer as a part of a node: started once the listeners answer challenges, stopped before they close. */
export function acmePart(renewer: AcmeRenewer | null): { name: string; start(): Promise<void> | undefined; stop(): Promise<void> | undefined } {
  return { name: 'ACME certificates', start: () => renewer?.start(), stop: () => renewer?.close() };
}
