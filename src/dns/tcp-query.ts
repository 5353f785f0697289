import { connect } from 'node:net';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import type { HostPort } from '../net/address.js';

/**
 * Sends one query over a fresh TCP connection (RFC 7766 framing: a two-byte
 * length before each message) and resolves with the decoded answer; rejects on
 * a connection error, a malformed answer or the timeout.
 */
export function queryOverTcp(server: HostPort, query: Buffer, timeoutMs: number): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    const chunks: Buffer[] = [];
    let received = 0;
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer over TCP within ${timeoutMs} ms`)));
    socket.on('error', fail);
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.end(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = Buffer.concat(chunks);
      const size = all.readUInt16BE(0);
      if (all.length < 2 + size) return;
      socket.destroy();
      try {
        resolve(dnsPacket.decode(all.subarray(2, 2 + size)));
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.on('end', () => fail(new Error('connection closed before a whole answer')));
  });
}
