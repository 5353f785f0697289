import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A private key as stored in etcd: AES-256-GCM with a random IV, the name it belongs to as associated data. */
export interface SealedKey {
  readonly alg: 'aes-256-gcm';
  readonly iv: string;
  readonly tag: string;
  readonly data: string;
}

/** Why a sealed key or the encryption key cannot be used. */
export class SealError extends Error {}

/** Reads the 32-byte encryption key from `path`: 64 hex digits or base64 (white space around is ignored). */
export function readEncryptionKey(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new SealError(`cannot read the ACME encryption key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32 || (!/^[0-9a-f]{64}$/i.test(text) && key.toString('base64').replace(/=+$/, '') !== text.replace(/=+$/, ''))) {
    throw new SealError(`the ACME encryption key ${path} must hold 32 bytes as 64 hex digits or base64 (for example: openssl rand -hex 32)`);
  }
  return key;
}

/** Encrypts `plain` for `name` (which must be given again to open it, so a value copied to another key does not open). */
export function seal(key: Buffer, name: string, plain: string): SealedKey {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(name));
  const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return { alg: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

/** Decrypts a sealed value of `name`; throws a SealError when the key is not the one it was sealed with or the value was altered. */
export function open(key: Buffer, name: string, sealed: SealedKey): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError(`cannot decrypt the private key of ${name}: proxy.tls.acme.encryptionKey is not the key it was stored with, or the value was altered`);
  }
}
