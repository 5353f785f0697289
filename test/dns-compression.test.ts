import dnsPacket, { type Answer } from 'dns-packet';
import dns2 from 'dns2';
import t from 'tap';
import { compress } from '../src/dns/compress.js';
import { assemble } from '../src/dns/wire.js';
import { dig } from './helpers/dig.js';
import { startTestMeridian } from './helpers/meridian.js';
import { startUpstream } from './helpers/upstream.js';

const { Packet } = dns2;
const IN = Packet.CLASS.IN;
const EIGHT = Array.from({ length: 8 }, (_, i) => `203.0.113.${i + 1}`);
const FORTY_V6 = Array.from({ length: 40 }, (_, i) => `2001:db8:c::${(i + 1).toString(16)}`);

/** What dns2 (a compressing encoder) makes of the same message: the reference size. */
function reference(question: { name: string; type: number }, records: { answers?: object[]; authorities?: object[] }): number {
  const packet = new Packet();
  packet.header.qr = 1;
  packet.questions.push({ name: question.name, type: question.type, class: IN } as never);
  for (const r of records.answers ?? []) packet.answers.push(r as never);
  for (const r of records.authorities ?? []) packet.authorities.push(r as never);
  return packet.toBuffer().length;
}

function size(raw: string): number {
  return Number(/MSG SIZE\s+rcvd: (\d+)/.exec(raw)?.[1]);
}

t.test('answers are name-compressed: sizes equal a compressing encoder (dns2), dig parses them', async (t) => {
  const up = await startUpstream('up');
  t.teardown(() => up.kill());
  const m = await startTestMeridian(
    {
      regions: {
        'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: EIGHT, ipv6: FORTY_V6 } },
      },
      services: { web: { versions: { stable: { endpoints: { 'eu-west': [up.address] } } } } },
      routes: { www: { hosts: ['www.example.com', 'v6.example.com'], service: 'web' } },
    },
    { dns: { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com', 'ns2.example.com'] }] } },
  );
  t.teardown(() => m.close());
  const port = m.dnsPort as number;

  const eight = await dig(port, ['www.example.com', 'A', '+noedns']);
  t.same(eight.answers.map((a) => a.data).sort(), [...EIGHT].sort(), 'dig reads all eight addresses');
  const a = (address: string) => ({ name: 'www.example.com', type: Packet.TYPE.A, class: IN, ttl: 30, address });
  const expected = reference({ name: 'www.example.com', type: Packet.TYPE.A }, { answers: EIGHT.map(a) });
  t.equal(size(eight.raw), expected, `8-address answer: ${size(eight.raw)} bytes, as dns2 encodes it`);
  t.equal(expected, 12 + 21 + 8 * 16, 'each A record after the first name is 16 bytes (uncompressed: 27)');

  const ns = await dig(port, ['example.com', 'NS', '+noedns']);
  t.same(ns.answers.map((r) => r.data).sort(), ['ns1.example.com.', 'ns2.example.com.']);
  const nsRef = reference({ name: 'example.com', type: Packet.TYPE.NS }, { answers: ['ns1.example.com', 'ns2.example.com'].map((n) => ({ name: 'example.com', type: Packet.TYPE.NS, class: IN, ttl: 3600, ns: n })) });
  t.equal(size(ns.raw), nsRef, 'NS answer: targets point into the question');

  const nx = await dig(port, ['nope.example.com', '+noedns']);
  t.equal(nx.status, 'NXDOMAIN');
  t.equal(nx.authority[0]?.type, 'SOA', 'dig reads the compressed SOA');
  t.match(nx.authority[0]?.data, /^ns1\.example\.com\. hostmaster\.example\.com\. /);
  const soa = { name: 'example.com', type: Packet.TYPE.SOA, class: IN, ttl: 30, primary: 'ns1.example.com', admin: 'hostmaster.example.com', serial: 1, refresh: 3600, retry: 600, expiration: 604800, minimum: 30 };
  t.equal(size(nx.raw), reference({ name: 'nope.example.com', type: Packet.TYPE.A }, { authorities: [soa] }), 'NXDOMAIN with its SOA');

  // 40 AAAA records: 1,680 bytes of records uncompressed, 1,120 compressed.
  const v6 = await dig(port, ['v6.example.com', 'AAAA', '+bufsize=1232', '+ignore']);
  t.notOk(v6.flags.has('tc'), 'fits 1232 bytes once compressed: not truncated');
  t.equal(v6.transport, 'UDP');
  t.equal(v6.answers.length, 40);
  const v6Ref = reference({ name: 'v6.example.com', type: Packet.TYPE.AAAA }, { answers: FORTY_V6.map((address) => ({ name: 'v6.example.com', type: Packet.TYPE.AAAA, class: IN, ttl: 30, address })) });
  t.equal(size(v6.raw), v6Ref + 11, 'as dns2 encodes it, plus the 11-byte OPT');
});

t.test('compress(): forwarded record types, RFC 3597 limits, and messages it leaves alone', async (t) => {
  const question = dnsPacket.encode({ type: 'query', questions: [{ name: 'Mail.Example.org', type: 'MX' }] }).subarray(12);
  const records: Answer[] = [
    { name: 'Mail.Example.org', type: 'CNAME', ttl: 60, data: 'mx.example.org' },
    { name: 'mx.example.org', type: 'MX', ttl: 60, data: { preference: 10, exchange: 'smtp.example.org' } },
    { name: 'example.org', type: 'SRV', ttl: 60, data: { priority: 1, weight: 1, port: 25, target: 'smtp.example.org' } },
    { name: 'example.org', type: 'TXT', ttl: 60, data: 'example.org' },
  ];
  const soa: Answer = { name: 'example.org', type: 'SOA', ttl: 60, data: { mname: 'ns.example.org', rname: 'root.example.org', serial: 9, refresh: 1, retry: 2, expire: 3, minimum: 4 } };
  const plain = Buffer.concat([Buffer.from('000184000001000400010000', 'hex'), question, dnsPacket.encode({ answers: records, authorities: [soa] }).subarray(12)]);
  const packed = compress(plain);
  t.ok(packed.length < plain.length, `${plain.length} bytes down to ${packed.length}`);
  const decoded = dnsPacket.decode(packed);
  const original = dnsPacket.decode(plain);
  const names = (p: typeof decoded) => JSON.stringify([p.answers, p.authorities]).toLowerCase();
  t.equal(names(decoded), names(original), 'the same records, names compared without case');
  t.equal(packed.indexOf(Buffer.from('\x04smtp\x07example\x03org\x00', 'latin1')) >= 0, true, 'the SRV target stays uncompressed (RFC 2782)');
  const ref = new Packet();
  ref.header.qr = 1;
  ref.questions.push({ name: 'Mail.Example.org', type: Packet.TYPE.MX, class: IN } as never);
  ref.answers.push({ name: 'Mail.Example.org', type: Packet.TYPE.CNAME, class: IN, ttl: 60, domain: 'mx.example.org' } as never);
  ref.answers.push({ name: 'mx.example.org', type: Packet.TYPE.MX, class: IN, ttl: 60, priority: 10, exchange: 'smtp.example.org' } as never);
  const refSize = ref.toBuffer().length;
  const ours = compress(Buffer.concat([Buffer.from('000184000001000200000000', 'hex'), question, dnsPacket.encode({ answers: records.slice(0, 2) }).subarray(12)]));
  t.equal(ours.length, refSize, 'CNAME and MX as dns2 compresses them');

  const pointed = Buffer.from(packed);
  t.equal(compress(pointed), pointed, 'a message with pointers already comes back as it was');
  const cut = plain.subarray(0, plain.length - 3);
  t.equal(compress(cut), cut, 'a message cut short comes back as it was');
  const header = assemble(1, 0, null);
  t.equal(header.length, 12, 'a bare header is left as it is');
});
