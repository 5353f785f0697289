import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StaticConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import { selfSignedPem } from '../proxy/self-signed.js';

/** How long the demo's certificate is valid; made again when its files are removed. */
const DEMO_DAYS = 90;

/** Writes `text` to `path` whole (a reader never sees half a file), creating its folder. */
function writeWhole(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode });
  renameSync(temp, path);
}

/**
 * The demo's HTTPS: every configured certificate whose two files are both
 * missing gets a self-signed pair for `localhost`, 127.0.0.1 and ::1 written
 * there, so `npm start` serves HTTPS at once (`curl --cacert <cert>
 * https://localhost:8443/`). Files that exist are left alone; a pair with one
 * file missing is a mistake to report, not to paper over, so it is left too
 * (the start then names it).
 */
export async function makeDemoCertificates(config: StaticConfig, logger: Logger): Promise<void> {
  for (const files of config.proxy.tls?.certificates ?? []) {
    if (existsSync(files.cert) || existsSync(files.key)) continue;
    const pem = await selfSignedPem({ dnsNames: ['localhost'], ips: ['127.0.0.1', '::1'], days: DEMO_DAYS });
    writeWhole(files.key, pem.key, 0o600);
    writeWhole(files.cert, pem.cert, 0o644);
    logger.info({ cert: files.cert, key: files.key, names: ['localhost', '127.0.0.1', '::1'], days: DEMO_DAYS }, `made a self-signed demo certificate: curl --cacert ${files.cert} https://localhost:${config.proxy.tls?.listen.port}/`);
  }
}
