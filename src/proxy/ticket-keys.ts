import { randomBytes } from 'node:crypto';

/** Bytes of one set of TLS session ticket keys as Node takes them: name, HMAC secret, AES key (16 each). */
const KEY_BYTES = 48;

/**
 * The TLS session ticket keys a node's processes share, so a session resumes
 * on whichever process takes the connection. The process that owns them (the
 * primary, or a single-process node) renews them every `rotateMs`: a ticket
 * is encrypted under the keys in force, and a leaked key opens only the
 * sessions of one period. Node holds one set at a time, so a ticket from
 * before a rotation no longer resumes: that client makes one full handshake.
 */
export class TicketKeys {
  readonly rotateMs: number;
  #keys: Buffer = randomBytes(KEY_BYTES);
  #since = new Date();
  #timer: NodeJS.Timeout | null = null;
  readonly #listeners: ((keys: Buffer) => void)[] = [];

  constructor(rotateMs: number) {
    this.rotateMs = rotateMs;
  }

  /** The keys in force. */
  get current(): Buffer {
    return this.#keys;
  }

  /** Calls `listener` with the keys after every change. */
  onChange(listener: (keys: Buffer) => void): void {
    this.#listeners.push(listener);
  }

  /** Puts keys renewed elsewhere in force (a worker hears its primary's); a wrong length is refused. */
  set(keys: Buffer): void {
    if (keys.length !== KEY_BYTES) throw new RangeError(`TLS ticket keys are ${KEY_BYTES} bytes, got ${keys.length}`);
    if (keys.equals(this.#keys)) return;
    this.#keys = keys;
    this.#since = new Date();
    for (const listener of this.#listeners) listener(keys);
  }

  /** Renews the keys now. */
  rotate(): void {
    this.set(randomBytes(KEY_BYTES));
  }

  /** Renews the keys every `rotateMs` from now on (the owner of the keys calls this; their users do not). */
  startRotating(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.rotate(), this.rotateMs);
    this.#timer.unref();
  }

  /** Stops renewing. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** How the keys are kept, as the admin state shows it (never the keys). */
  state(): { rotateEveryMs: number; inForceSince: string } {
    return { rotateEveryMs: this.rotateMs, inForceSince: this.#since.toISOString() };
  }
}
