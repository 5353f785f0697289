import type { ConfigIssue } from '../config/issues.js';
import type { RoutingDocument } from '../config/routing-schema.js';
import type { ApplyResult } from './applier.js';

/** A version of the routing table once read and validated: the whole document, or why there is none. */
export type ProviderDocument =
  | {
      readonly ok: true;
      readonly doc: RoutingDocument;
      /** The document as written, as JSON, for the last-good snapshot. */
      rawJson(): string | Uint8Array;
      /** The source's own revision (etcd); a file's applies are counted instead. */
      readonly revision?: number;
      /** Changes the provider held back on its own (etcd keys): shown, the rest applies. */
      readonly heldBack?: readonly ConfigIssue[];
    }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** One version of the routing table as a provider sees it: its digest at once, its document when asked. */
export interface ProviderUpdate {
  /** Equal digests mean the same document and problems, so the watcher drops a repeat before reading it. */
  readonly digest: string;
  /** Parses and validates this version (may take a while: a file is parsed on a worker thread). */
  read(): Promise<ProviderDocument>;
}

/** How a node boots from a provider. */
export interface ProviderBoot {
  /** How long to wait for the first version before serving the last-good snapshot; null: the first read always answers. */
  readonly answerWithinMs: number | null;
  /**
   * When the first version is refused: `serve-last-good` (a routes file that does
   * not validate) or `wait` (an etcd prefix with no table yet, which the operator
   * is expected to fill: the node stays not ready).
   */
  readonly whenRefused: 'serve-last-good' | 'wait';
  /** Why the provider did not answer in time, for the logs and the state. */
  readonly silence: string;
}

/**
 * Where routing tables come from (the routes file, etcd). A provider reads and
 * follows its source and hands every version to `emit`, one at a time; it
 * never compiles or swaps anything itself.
 */
export interface RoutingProvider {
  readonly kind: 'file' | 'etcd';
  readonly boot: ProviderBoot;
  /** Starts reading and following the source. */
  start(emit: (update: ProviderUpdate) => Promise<ApplyResult>): void;
  /** Reads the source again now (the admin reload) and emits what it read; etcd, always followed, answers `unchanged`. */
  reload(): Promise<ApplyResult['result']>;
  /** The source as the admin state shows it. */
  state(): Record<string, unknown>;
  close(): Promise<void>;
}
