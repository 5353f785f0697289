import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseEndpointAddress, type EndpointAddress } from '../net/address.js';
import { DEFAULT_UPSTREAM_TLS, type UpstreamTls } from '../net/upstream-tls.js';

/** A CA file larger than this is refused: a bundle of every public root is about 200 KiB. */
const MAX_CA_BYTES = 1024 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads a CA file (relative paths are from the working directory): its PEM certificates, or why they cannot be used. */
function readCaFile(file: string): { readonly pem: string } | { readonly problem: string } {
  let text: string;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return { problem: `"${file}" is not a file` };
    if (stat.size > MAX_CA_BYTES) return { problem: `"${file}" is larger than 1 MiB: not a CA certificate file` };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { problem: `cannot read the CA file: ${(err as Error).message}` };
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return { problem: `"${file}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)` };
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return { problem: `"${file}": certificate ${i + 1} cannot be parsed (${(err as Error).message})` };
    }
  }
  return { pem: `${blocks.join('\n')}\n` };
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/i;

/** The SNI and verification name: a host name (an IP address cannot be sent as SNI). */
const serverName = z.string().transform((text, ctx): string => {
  if (isIP(text) !== 0) {
    ctx.addIssue({ code: 'custom', message: 'an IP address cannot be a TLS server name: leave serverName out and the certificate is checked for the endpoint\'s IP' });
    return z.NEVER;
  }
  if (!HOST_NAME.test(text)) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a host name such as api.internal` });
    return z.NEVER;
  }
  return text.toLowerCase();
});

/**
 * A `tls` block of a version or endpoint: `ca` (a PEM file whose certificates
 * are then the only ones trusted), `serverName`, `verify`. The CA file is read
 * here, when the table is validated, so compiling and connecting never touch
 * the disk and a file that cannot be used is an error at `tls.ca`.
 */
export const upstreamTlsSchema = z
  .strictObject({
    ca: z.string().min(1, 'expected the path of a PEM file').optional(),
    serverName: serverName.optional(),
    verify: z.boolean().default(true),
  })
  .transform((spec, ctx): UpstreamTls => {
    let caPem: string | null = null;
    if (spec.ca !== undefined) {
      const read = readCaFile(spec.ca);
      if ('problem' in read) {
        ctx.addIssue({ code: 'custom', message: read.problem, path: ['ca'] });
        return z.NEVER;
      }
      caPem = read.pem;
    }
    return {
      caPem,
      caFile: spec.ca ?? null,
      caDigest: caPem === null ? null : createHash('sha256').update(caPem).digest('hex'),
      serverName: spec.serverName ?? null,
      verify: spec.verify,
    };
  });

/** An endpoint address: `host:port`, `http://host:port` or `https://host:port`. */
export const endpointAddress = z.string().transform((text, ctx): EndpointAddress => {
  const parsed = parseEndpointAddress(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/**
 * The TLS an endpoint is spoken to with: its own `tls` block, else its
 * version's, else the defaults when it is written `https://`; null (plaintext)
 * otherwise. Validation refuses `http://` under a `tls` block, so an explicit
 * `http://` is always plaintext.
 */
export function endpointTls(endpoint: { readonly scheme: 'http' | 'https' | null; readonly tls?: UpstreamTls | undefined }, version: { readonly tls?: UpstreamTls | undefined }): UpstreamTls | null {
  if (endpoint.scheme === 'http') return null;
  return endpoint.tls ?? version.tls ?? (endpoint.scheme === 'https' ? DEFAULT_UPSTREAM_TLS : null);
}
