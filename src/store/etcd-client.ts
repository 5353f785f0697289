import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { StaticConfig } from '../config/static-schema.js';

/** The etcd settings of the static configuration. */
export type EtcdSettings = NonNullable<StaticConfig['store']['etcd']>;

/**
 * An etcd client from the static configuration: endpoints, password auth, TLS
 * (CA, client certificate and key), a dial timeout, a deadline on every unary
 * call, and gRPC keepalive pings that find half-open connections within seconds.
 * `overrides` replace client options (the CLI turns retries off, to fail fast).
 */
export function createEtcdClient(settings: EtcdSettings, overrides: Partial<IOptions> = {}): Etcd3 {
  const options: IOptions = {
    hosts: settings.endpoints,
    dialTimeout: settings.dialTimeout,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.requestTimeout }),
    grpcOptions: {
      'grpc.keepalive_time_ms': settings.keepaliveTime,
      'grpc.keepalive_timeout_ms': settings.keepaliveTimeout,
      'grpc.keepalive_permit_without_calls': 1,
    },
  };
  if (settings.username !== undefined) options.auth = { username: settings.username, password: settings.password ?? '' };
  if (settings.tls !== undefined) {
    const tls = settings.tls;
    options.credentials = {
      rootCertificate: tls.ca === undefined ? Buffer.alloc(0) : readFileSync(tls.ca),
      ...(tls.key === undefined ? {} : { privateKey: readFileSync(tls.key) }),
      ...(tls.cert === undefined ? {} : { certChain: readFileSync(tls.cert) }),
    };
  }
  return new Etcd3({ ...options, ...overrides });
}
