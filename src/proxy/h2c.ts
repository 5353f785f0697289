import type { Socket } from 'node:net';

/** What an HTTP/2 client sends first on a plaintext connection it knows speaks HTTP/2 (RFC 9113 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Looks at the first bytes of a plaintext connection and hands it on: to
 * `h2` when they are the HTTP/2 connection preface (h2c with prior
 * knowledge), else to `h1` as soon as they cannot be (the first byte of
 * almost every HTTP/1.1 request already tells). The bytes read are put back
 * for whoever takes the connection. A client that sends nothing is closed
 * after `timeoutMs`, as a slow HTTP/1.1 head would be.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, h2: (socket: Socket) => void, h1: (socket: Socket) => void): void {
  let seen: Buffer | null = null;
  const onData = (chunk: Buffer): void => {
    seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const preface = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (preface && seen.length < PREFACE.length) return;
    socket.off('data', onData);
    socket.off('error', onError);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(seen);
    if (preface) {
      // node:http2 reads what was put back when it takes the socket.
      h2(socket);
      return;
    }
    h1(socket);
    socket.resume();
  };
  const onError = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.setTimeout(timeoutMs, onError);
}
