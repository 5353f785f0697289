import { readConfigFile } from './document.js';
import { deepFreeze } from './freeze.js';
import { ConfigError, fromZodIssues, type ConfigIssue } from './issues.js';
import { staticConfigSchema, type StaticConfig } from './static-schema.js';

/** Command-line flags that override the static configuration file. */
export interface StaticFlags {
  listen?: string | undefined;
  admin?: string | undefined;
  routes?: string | undefined;
  etcd?: string | undefined;
  etcdPrefix?: string | undefined;
  dnsListen?: string | undefined;
  tlsListen?: string | undefined;
  nodeName?: string | undefined;
  workers?: string | undefined;
  region?: string | undefined;
  accessLog?: string | undefined;
  /** Where the access log goes when neither the file nor `--access-log` says (`meridian demo`: stdout). */
  accessLogDefault?: string | undefined;
  /** `MERIDIAN_ADMIN_TOKEN`: the admin token from the environment, so secrets stay out of configuration files. */
  adminToken?: string | undefined;
}

/** The environment variable that overrides `admin.token`. */
export const ADMIN_TOKEN_ENV = 'MERIDIAN_ADMIN_TOKEN';

/**
 * The overrides the environment gives: `MERIDIAN_ADMIN_TOKEN` for `admin.token`.
 * An empty value counts as unset, so a blank variable (compose's `${VAR:-}`)
 * never turns a token in the file off.
 */
export function environmentFlags(env: NodeJS.ProcessEnv = process.env): StaticFlags {
  const token = env[ADMIN_TOKEN_ENV];
  return token === undefined || token === '' ? {} : { adminToken: token };
}

type RawObject = Record<string, unknown>;

function isMapping(value: unknown): value is RawObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function section(doc: RawObject, key: string): RawObject {
  const current = doc[key];
  if (current !== null && typeof current === 'object' && !Array.isArray(current)) return current as RawObject;
  const created: RawObject = {};
  doc[key] = created;
  return created;
}

/** Where each flag lands in the document, so errors can name the flag the user typed. */
const FLAG_PATHS: ReadonlyArray<[keyof StaticFlags, string, string]> = [
  ['listen', '--listen', 'proxy.listen'],
  ['admin', '--admin', 'admin.listen'],
  ['routes', '--routes', 'store.file'],
  ['etcd', '--etcd', 'store.etcd.endpoints'],
  ['etcdPrefix', '--etcd-prefix', 'store.etcd.prefix'],
  ['dnsListen', '--dns-listen', 'dns.listen'],
  ['tlsListen', '--tls-listen', 'proxy.tls.listen'],
  ['nodeName', '--node-name', 'node.name'],
  ['workers', '--workers', 'proxy.workers'],
  ['region', '--region', 'node.region'],
  ['adminToken', ADMIN_TOKEN_ENV, 'admin.token'],
  ['accessLog', '--access-log', 'log.access'],
];

function applyFlags(doc: RawObject, flags: StaticFlags): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (flags.listen !== undefined) section(doc, 'proxy').listen = flags.listen;
  if (flags.admin !== undefined) section(doc, 'admin').listen = flags.admin;
  if (flags.adminToken !== undefined) section(doc, 'admin').token = flags.adminToken;
  if (flags.nodeName !== undefined) section(doc, 'node').name = flags.nodeName;
  if (flags.workers !== undefined) section(doc, 'proxy').workers = /^\d+$/.test(flags.workers) ? Number(flags.workers) : flags.workers;
  if (flags.region !== undefined) section(doc, 'node').region = flags.region;
  if (flags.accessLog !== undefined) section(doc, 'log').access = flags.accessLog;
  else if (flags.accessLogDefault !== undefined && (doc.log === undefined || (isMapping(doc.log) && doc.log.access === undefined))) section(doc, 'log').access = flags.accessLogDefault;
  if (flags.routes !== undefined && flags.etcd !== undefined) {
    issues.push({ path: '--routes', message: 'cannot be combined with --etcd' });
  }
  const store = section(doc, 'store');
  if (flags.routes !== undefined) {
    store.file = flags.routes;
    delete store.etcd;
  }
  if (flags.etcd !== undefined) {
    section(store, 'etcd').endpoints = flags.etcd.split(',').map((s) => s.trim());
    delete store.file;
  }
  if (flags.etcdPrefix !== undefined) {
    if (store.etcd === undefined) issues.push({ path: '--etcd-prefix', message: 'needs an etcd store (--etcd or store.etcd)' });
    else section(store, 'etcd').prefix = flags.etcdPrefix;
  }
  if (flags.dnsListen !== undefined) {
    if (doc.dns === undefined) issues.push({ path: '--dns-listen', message: 'needs a dns section with zones in the config file' });
    else section(doc, 'dns').listen = flags.dnsListen;
  }
  if (flags.tlsListen !== undefined) {
    const proxy = section(doc, 'proxy');
    if (proxy.tls === undefined) issues.push({ path: '--tls-listen', message: 'needs a proxy.tls section with certificates (or acme) in the config file' });
    else section(proxy, 'tls').listen = flags.tlsListen;
  }
  return issues;
}

function renameFlagPaths(issues: ConfigIssue[], flags: StaticFlags): ConfigIssue[] {
  return issues.map((issue) => {
    for (const [key, flag, path] of FLAG_PATHS) {
      if (flags[key] !== undefined && (issue.path === path || issue.path.startsWith(`${path}[`))) {
        return { path: flag + issue.path.slice(path.length), message: issue.message };
      }
    }
    return issue;
  });
}

/** Validates a raw static-config document with flag overrides; throws ConfigError listing every problem. */
export function buildStaticConfig(raw: unknown, flags: StaticFlags = {}): StaticConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError([{ path: '', message: 'the configuration must be a mapping of sections (node, proxy, admin, ...)' }]);
  }
  const doc: RawObject = structuredClone((raw ?? {}) as RawObject);
  const issues = applyFlags(doc, flags);
  const result = staticConfigSchema.safeParse(doc);
  if (!result.success) issues.push(...renameFlagPaths(fromZodIssues(result.error.issues), flags));
  if (result.success && result.data.store.file === undefined && result.data.store.etcd === undefined) {
    issues.push({ path: 'store', message: 'set store.file or store.etcd (or pass --routes FILE / --etcd URL)' });
  }
  if (issues.length > 0 || !result.success) throw new ConfigError(issues);
  return deepFreeze(result.data);
}

/**
 * Reads the static configuration file (when given) and applies the environment
 * (`MERIDIAN_ADMIN_TOKEN`), then flags; throws ConfigError listing every problem.
 */
export async function loadStaticConfig(file: string | undefined, flags: StaticFlags = {}, env: NodeJS.ProcessEnv = process.env): Promise<StaticConfig> {
  const raw = file === undefined ? {} : await readConfigFile(file);
  return buildStaticConfig(raw, { ...environmentFlags(env), ...flags });
}
