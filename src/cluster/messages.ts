import type { AddressInfo } from 'node:net';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ConfigIssue } from '../config/issues.js';
import type { HealthView } from '../health/endpoint-health.js';
import type { PassiveSignal } from '../net/failures.js';
import type { TableSource } from '../routing/table.js';
import type { RolloutSpec } from '../config/rollout-schema.js';
import type { StepReport } from '../rollout/step-stats.js';

/**
 * What a node's primary (the control plane) and its workers (the data plane)
 * say to each other over the cluster's IPC channel (advanced serialization, so
 * bytes cross as bytes).
 */

/** A validated routing document to compile and swap in, with the health of every endpoint identity. */
export interface TableMessage {
  readonly type: 'table';
  readonly source: TableSource;
  readonly revision: number;
  readonly stale: boolean;
  /** Changes the primary's store held back: shown, not applied. */
  readonly heldBack: readonly ConfigIssue[];
  /** The document as routing-lines bytes (config/routing-lines.ts). */
  readonly encoded: Uint8Array;
  readonly health: readonly HealthView[];
}

/** Endpoints whose health changed. */
export interface HealthMessage {
  readonly type: 'health';
  readonly views: readonly HealthView[];
}

/** Where to listen: the configured ports, or the ones the first worker got for port 0. */
export interface ListenMessage {
  readonly type: 'listen';
  readonly proxyPort: number;
  readonly dnsPort: number | null;
  readonly tlsPort: number | null;
  /** TLS session ticket keys every worker shares, so a session resumes on any of them (48 bytes). */
  readonly ticketKeys: Uint8Array | null;
}

/** The TLS session ticket keys were renewed: put these in force (48 bytes). */
export interface TicketKeysMessage {
  readonly type: 'ticket-keys';
  readonly keys: Uint8Array;
}

/** Stop taking traffic: drain for `delayMs`, let requests finish for up to `timeoutMs`, then exit. */
export interface DrainMessage {
  readonly type: 'drain';
  readonly delayMs: number;
  readonly timeoutMs: number;
}

/** Send your metrics, tagged with this id. */
export interface MetricsRequest {
  readonly type: 'metrics';
  readonly id: number;
}

/** A change of what the listeners answer for ACME: a pending challenge, or an issued certificate. */
export type AcmeChange =
  | { readonly kind: 'http'; readonly token: string; readonly keyAuthorization: string | null }
  | { readonly kind: 'alpn'; readonly name: string; readonly pem: { readonly cert: string; readonly key: string } | null }
  | { readonly kind: 'certificate'; readonly name: string; readonly cert: string; readonly key: string };

/** Apply an ACME change and answer with an AcmeAppliedMessage of the same id (0: no answer awaited). */
export interface AcmeMessage {
  readonly type: 'acme';
  readonly id: number;
  readonly change: AcmeChange;
}

/** Open the access log file again: the primary got SIGUSR1 (logrotate moved the file). */
export interface ReopenLogsMessage {
  readonly type: 'reopen-logs';
}

/** The rollouts as the primary read them: a worker counts the running ones' steps. */
export interface RolloutsMessage {
  readonly type: 'rollouts';
  readonly rollouts: readonly (readonly [service: string, spec: RolloutSpec])[];
}

/** Everything the primary sends a worker. */
export type ToWorker = TableMessage | HealthMessage | ListenMessage | TicketKeysMessage | DrainMessage | MetricsRequest | AcmeMessage | ReopenLogsMessage | RolloutsMessage;

/** A worker is up and waits for its table and where to listen. */
export interface ReadyMessage {
  readonly type: 'ready';
}

/** A worker listens. */
export interface ListeningMessage {
  readonly type: 'listening';
  readonly proxy: AddressInfo;
  readonly dns: AddressInfo | null;
  readonly tls: AddressInfo | null;
}

/** A worker swapped in a table. */
export interface AppliedMessage {
  readonly type: 'applied';
  readonly revision: number;
  /** When the worker swapped it in (ms since the epoch; the node's processes share one clock). */
  readonly appliedAt: number;
}

/** What a try saw of an endpoint, for the primary's passive health to judge. */
export interface PassiveMessage {
  readonly type: 'passive';
  readonly service: string;
  readonly version: string;
  readonly region: string;
  readonly key: string;
  readonly signal: PassiveSignal | 'success';
}

/** A worker's metrics, answering a MetricsRequest. */
export interface MetricsReply {
  readonly type: 'metrics';
  readonly id: number;
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
}

/** A worker applied an ACME change. */
export interface AcmeAppliedMessage {
  readonly type: 'acme-applied';
  readonly id: number;
}

/** What a worker counted of each running rollout step (sent once a second while there are any). */
export interface RolloutReportsMessage {
  readonly type: 'rollout-reports';
  readonly reports: readonly StepReport[];
}

/** Everything a worker sends the primary. */
export type ToPrimary = ReadyMessage | ListeningMessage | AppliedMessage | PassiveMessage | MetricsReply | AcmeAppliedMessage | RolloutReportsMessage;

/** Whether an IPC message is one of the worker protocol's (not prom-client's or Node's own). */
export function isProtocolMessage<T extends { type: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string';
}
