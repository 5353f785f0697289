/** A certificate (with its chain) and its private key, PEM. */
export interface StoredCertificate {
  readonly cert: string;
  readonly key: string;
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
  /** Calls `onChange` with each name whose certificate another node stored (never for a lone node). */
  watch(onChange: (name: string) => void): Promise<void>;
  close(): Promise<void>;
}
