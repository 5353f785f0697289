import { loadStaticConfig } from '../config/static-load.js';
import type { EtcdSettings } from '../store/etcd-client.js';
import { UsageError } from './args.js';

/** Flags of every command that talks to etcd. */
export const ETCD_FLAGS = {
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  config: { type: 'string', short: 'c' },
  timeout: { type: 'string' },
} as const;

/** Where the endpoints come from when no flag names them, first set wins. */
const ENDPOINT_VARIABLES = ['MERIDIAN_ETCD_ENDPOINTS', 'ETCDCTL_ENDPOINTS'] as const;
const DEFAULT_ENDPOINT = 'http://127.0.0.1:2379';

/** Help lines for ETCD_FLAGS. */
export const ETCD_FLAGS_HELP = `      --etcd URL[,URL]     etcd endpoints; first set wins: --etcd, MERIDIAN_ETCD_ENDPOINTS,
                           ETCDCTL_ENDPOINTS, store.etcd of --config, ${DEFAULT_ENDPOINT}
      --etcd-prefix P      key prefix: --etcd-prefix, MERIDIAN_ETCD_PREFIX, --config, /meridian/
  -c, --config FILE        static configuration: etcd endpoints, credentials and TLS
      --timeout DURATION   deadline of each etcd call, e.g. 10s (default 3s)
`;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** Endpoints as etcdctl takes them (`host:port` means http://), each checked, joined with commas. */
function endpointList(text: string, source: string): string {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new UsageError(`${source}: no endpoint given`);
  return list
    .map((endpoint) => {
      const url = endpoint.includes('://') ? endpoint : `http://${endpoint}`;
      if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new UsageError(`${source}: "${endpoint}" is not an http:// or https:// URL (or host:port)`);
      return url;
    })
    .join(',');
}

/** The endpoints flags and environment name, or undefined to take the configuration's. */
function chosenEndpoints(values: EtcdFlagValues): string | undefined {
  if (values.etcd !== undefined) return endpointList(values.etcd, '--etcd');
  for (const name of ENDPOINT_VARIABLES) {
    const value = nonEmpty(process.env[name]);
    if (value !== undefined) return endpointList(value, name);
  }
  return values.config === undefined ? DEFAULT_ENDPOINT : undefined;
}

/** The parsed values of ETCD_FLAGS. */
export interface EtcdFlagValues {
  etcd?: string | undefined;
  'etcd-prefix'?: string | undefined;
  config?: string | undefined;
  timeout?: string | undefined;
}

/** The etcd settings: --config's store.etcd (credentials, TLS, timeouts) with the endpoints and prefix of flags or environment over it. */
export async function etcdSettings(values: EtcdFlagValues): Promise<EtcdSettings> {
  const prefix = values['etcd-prefix'] ?? nonEmpty(process.env.MERIDIAN_ETCD_PREFIX);
  const config = await loadStaticConfig(values.config, { etcd: chosenEndpoints(values), etcdPrefix: prefix });
  const settings = config.store.etcd;
  if (settings === undefined) throw new UsageError(`${values.config ?? 'the configuration'} has no store.etcd; pass --etcd URL or set MERIDIAN_ETCD_ENDPOINTS`);
  if (!settings.prefix.endsWith('/')) throw new UsageError('the etcd prefix must end with "/"');
  return settings;
}
