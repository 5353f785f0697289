/** Where the routing table comes from, once the first table is in force (or refused). */
export interface RoutingSource {
  /** Starts following changes. */
  watch(): void;
  /** Re-reads the source now (admin reload); resolves with what happened. */
  reload(): Promise<string>;
  /** The source as the admin state shows it. */
  state(): Record<string, unknown>;
  close(): Promise<void>;
}
