import type { Etcd3 } from 'etcd3';
import { loadStaticConfig } from '../config/static-load.js';
import { createEtcdClient, type EtcdSettings } from '../store/etcd-client.js';
import { UsageError } from './args.js';

/** Flags of every command that talks to etcd. */
export const ETCD_FLAGS = {
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  config: { type: 'string', short: 'c' },
} as const;

/** Help lines for ETCD_FLAGS. */
export const ETCD_FLAGS_HELP = `      --etcd URL[,URL]     etcd endpoints (default: store.etcd of --config, else http://127.0.0.1:2379)
      --etcd-prefix P      key prefix (default /meridian/)
  -c, --config FILE        static configuration: etcd endpoints, credentials and TLS
`;

/** The etcd to talk to: --config's store.etcd (endpoints, credentials, TLS) with --etcd/--etcd-prefix over it, else the defaults. */
export async function etcdFromFlags(values: { etcd?: string | undefined; 'etcd-prefix'?: string | undefined; config?: string | undefined }): Promise<{ client: Etcd3; prefix: string }> {
  const etcd = values.etcd ?? (values.config === undefined ? 'http://127.0.0.1:2379' : undefined);
  const config = await loadStaticConfig(values.config, { etcd, etcdPrefix: values['etcd-prefix'] });
  const settings: EtcdSettings | undefined = config.store.etcd;
  if (settings === undefined) throw new UsageError(`${values.config ?? 'the configuration'} has no store.etcd; pass --etcd URL`);
  if (!settings.prefix.endsWith('/')) throw new UsageError('--etcd-prefix must end with "/"');
  return { client: createEtcdClient(settings), prefix: settings.prefix };
}
