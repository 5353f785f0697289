import t from 'tap';
import { dig } from './helpers/dig.js';
import { optWith, rawQuery, readAnswer, udpExchange } from './helpers/dns-raw.js';
import { startWwwDnsNode } from './helpers/dns-node.js';

const FLAG_RD = 0x0100;
const FLAG_CD = 0x0010;
const NOTIFY = 4 << 11;

const ECS = 8;
const q = { type: 'A' as const, name: 'www.example.com' };

t.test('every answer to a query with a valid OPT carries one; malformed OPTs get FORMERR with a minimal OPT', async (t) => {
  const { dnsPort: port } = await startWwwDnsNode(t, { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] });

  t.test('NOTIMP (dig +opcode=notify) keeps the question and the OPT, and copies RD only', async (t) => {
    const notify = await dig(port, ['www.example.com', '+opcode=notify', '+cdflag']);
    t.equal(notify.status, 'NOTIMP');
    t.not(notify.edns, null, 'dig shows the OPT');
    t.match(notify.raw, /;; QUESTION SECTION:\n;www\.example\.com\.\s+IN\s+A/, 'the question is echoed');
    t.ok(notify.flags.has('rd'), 'RD copied');
    t.notOk(notify.flags.has('cd'), 'CD not copied');
    const raw = readAnswer(await udpExchange(port, rawQuery({ flags: NOTIFY | FLAG_RD | FLAG_CD, questions: [q], additionals: [optWith([{ code: ECS, data: Buffer.from([0, 1, 16, 0, 10, 2]) }])] })));
    t.equal(raw.rcode, 4);
    t.equal(raw.opcode, 4, 'the opcode comes back');
    t.equal(raw.flags & (FLAG_RD | FLAG_CD), FLAG_RD);
    t.same(raw.counts, [1, 0, 0, 1]);
    t.same(raw.opts[0]?.options?.map((o) => o.data?.toString('hex')), ['000110000a02'], 'the client subnet echoed with scope 0');
    const plain = readAnswer(await udpExchange(port, rawQuery({ flags: NOTIFY, questions: [q] })));
    t.same(plain.counts, [1, 0, 0, 0], 'no OPT in answers to queries without one');
  });

  t.test('a client subnet with address bits past its source prefix is FORMERR (RFC 7871 6), not an altered address', async (t) => {
    const ecs = (data: number[]) => rawQuery({ questions: [q], additionals: [optWith([{ code: ECS, data: Buffer.from(data) }])] });
    for (const [data, why] of [
      [[0, 1, 15, 0, 10, 3], 'bit 16 set in a /15'],
      [[0, 1, 20, 0, 10, 2, 8], 'bit 21 set in a /20'],
      [[0, 2, 1, 0, 0xc0], 'bit 2 set in an IPv6 /1'],
      [[0, 1, 40, 0, 10, 1, 0, 0, 0], 'an IPv4 /40'],
    ] as const) {
      const a = readAnswer(await udpExchange(port, ecs([...data])));
      t.equal(a.rcode, 1, `${why}: FORMERR`);
      t.same(a.counts, [1, 0, 0, 1], `${why}: the question and one OPT`);
      t.same(a.opts[0]?.options, [], `${why}: the OPT is minimal`);
    }
    const fine = readAnswer(await udpExchange(port, ecs([0, 1, 15, 0, 10, 2])));
    t.equal(fine.rcode, 0, 'the same /15 without stray bits is answered');
    t.same(fine.opts[0]?.options?.map((o) => o.data?.subarray(4).toString('hex')), ['0a02'], 'its address comes back as sent');
    const later = readAnswer(await udpExchange(port, rawQuery({ questions: [q], additionals: [optWith([{ code: ECS, data: Buffer.from([0, 1, 15, 0, 10, 3]) }], 1)] })));
    t.equal(later.opts[0]?.extendedRcode, 1, 'EDNS version 1: BADVERS (16), its options unread');
    t.equal(later.opts[0]?.ednsVersion, 0);
  });

  t.test('two questions, no question and two OPTs are FORMERR, with the OPT', async (t) => {
    const two = readAnswer(await udpExchange(port, rawQuery({ questions: [q, { type: 'A', name: 'api.example.com' }], additionals: [optWith()] })));
    t.equal(two.rcode, 1, 'QDCOUNT=2: FORMERR (RFC 9619)');
    t.same(two.counts, [0, 0, 0, 1], 'no question echoed (which one would it be), the OPT kept');
    t.equal(two.id, 4242);
    const none = readAnswer(await udpExchange(port, rawQuery({ questions: [], additionals: [optWith()] })));
    t.equal(none.rcode, 1);
    t.same(none.counts, [0, 0, 0, 1]);
    const twoOpts = readAnswer(await udpExchange(port, rawQuery({ questions: [q], additionals: [optWith(), optWith()] })));
    t.equal(twoOpts.rcode, 1, 'two OPT records: FORMERR (RFC 6891 6.1.1)');
    t.same(twoOpts.counts, [1, 0, 0, 1], 'the question and one minimal OPT');
    t.same(twoOpts.opts[0]?.options, []);
    const trailing = readAnswer(await udpExchange(port, Buffer.concat([rawQuery({ questions: [q], additionals: [optWith()] }), Buffer.alloc(3)])));
    t.equal(trailing.rcode, 1, 'bytes after the last record: FORMERR');
    t.same(trailing.counts, [1, 0, 0, 1]);
  });

  t.test('REFUSED keeps the OPT too', async (t) => {
    const refused = await dig(port, ['www.example.org']);
    t.equal(refused.status, 'REFUSED');
    t.not(refused.edns, null);
  });
});
