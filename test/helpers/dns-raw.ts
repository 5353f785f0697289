import { createSocket } from 'node:dgram';
import dnsPacket, { type Answer, type DecodedPacket, type Packet } from 'dns-packet';

/** Sends one raw message over UDP to 127.0.0.1:port and resolves with the answer (rejects after 2 s). */
export function udpExchange(port: number, message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no answer'));
    }, 2_000);
    socket.on('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

/** A query message (id 4242, RD) with whatever sections `packet` gives. */
export function rawQuery(packet: Packet): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, ...packet });
}

/** An OPT record for a query, with raw options. */
export function optWith(options: { code: number; data: Buffer }[] = [], ednsVersion = 0): Answer {
  return { name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion, flags: 0, flag_do: false, options: options as never } as Answer;
}

/** Header fields and sections of an answer message. */
export interface RawAnswer {
  readonly id: number;
  readonly flags: number;
  readonly rcode: number;
  readonly opcode: number;
  readonly counts: readonly [number, number, number, number];
  readonly packet: DecodedPacket;
  /** The OPT records of the additional section. */
  readonly opts: readonly { readonly ednsVersion?: number; readonly extendedRcode?: number; readonly options?: readonly { code: number; data?: Buffer }[] }[];
}

/** Reads an answer message. */
export function readAnswer(message: Buffer): RawAnswer {
  const packet = dnsPacket.decode(message);
  const flags = message.readUInt16BE(2);
  return {
    id: message.readUInt16BE(0),
    flags,
    rcode: flags & 0xf,
    opcode: (flags >> 11) & 0xf,
    counts: [message.readUInt16BE(4), message.readUInt16BE(6), message.readUInt16BE(8), message.readUInt16BE(10)],
    packet,
    opts: (packet.additionals ?? []).filter((r) => r.type === 'OPT') as RawAnswer['opts'],
  };
}
