/** A certificate (with its chain) and its private key, PEM. */
export interface StoredCertificate {
  readonly cert: string;
  readonly key: string;
}

/** A pending challenge as the nodes of a fleet share it (a null answer withdraws it). */
export type SharedChallenge =
  | { readonly kind: 'http'; readonly token: string; readonly keyAuthorization: string | null }
  | { readonly kind: 'alpn'; readonly name: string; readonly pem: StoredCertificate | null };

/** What a store reports of other nodes' work. */
export interface StoreEvents {
  /** Another node stored a certificate for `name`. */
  certificate(name: string): void;
  /** Another node's order has (or no longer has) a challenge pending: the CA may validate on any node. */
  challenge(change: SharedChallenge): void;
}

/**
 * Where a node keeps its ACME account key and certificates: files on disk
 * (one node), or etcd (the fleet shares them; see etcd-store.ts).
 */
export interface AcmeStore {
  /** Where things are kept, as the admin state shows it. */
  readonly where: string;
  /** The account key, or null when none was made yet. */
  loadAccount(): Promise<string | null>;
  saveAccount(keyPem: string): Promise<void>;
  /** The certificate for `name`, or null when none is stored. */
  load(name: string): Promise<StoredCertificate | null>;
  save(name: string, cert: StoredCertificate): Promise<void>;
  /** Runs `work` while no other node orders (a fleet-wide lock); alone, at once. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  /** Publishes a pending challenge to the other nodes (a lone node has nobody to tell). */
  shareChallenge(change: SharedChallenge): Promise<void>;
  /** Reports what other nodes store and publish (never for a lone node). */
  watch(events: StoreEvents): Promise<void>;
  close(): Promise<void>;
}
