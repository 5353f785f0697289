import { createSocket, type Socket } from 'node:dgram';
import dnsPacket, { type Answer } from 'dns-packet';
import t, { type Test } from 'tap';
import { getJson } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { startWwwDnsNode } from './helpers/dns-node.js';

const DNS = { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com'] }] };

/** A fake resolver on 127.0.0.1; `answer` decides what to send back for each query. */
async function resolver(t: Test, answer: (query: Buffer, port: number, reply: (message: Buffer, from?: Socket) => void) => void): Promise<number> {
  const socket = createSocket('udp4');
  const other = createSocket('udp4');
  socket.on('message', (message, peer) => answer(message, peer.port, (reply, from = socket) => from.send(reply, peer.port, peer.address)));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => other.bind(0, '127.0.0.1', resolve));
  spoofer = other;
  t.teardown(() => {
    socket.close();
    other.close();
  });
  return socket.address().port;
}
let spoofer: Socket | null = null;

function response(query: Buffer, answers: Answer[], patch: { name?: string } = {}): Buffer {
  const q = dnsPacket.decode(query);
  const question = q.questions?.[0] as { name: string; type: 'A'; class: 'IN' };
  return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: [{ ...question, name: patch.name ?? question.name }], answers });
}

const a = (name: string, data: string): Answer => ({ name, type: 'A', ttl: 300, data });

function meridian(t: Test, forwarder: number): Promise<{ dnsPort: number; adminPort: number }> {
  return startWwwDnsNode(t, { ...DNS, forwarders: [`127.0.0.1:${forwarder}`] });
}

t.test('each forwarded query leaves from its own random source port (RFC 5452)', async (t) => {
  const ports: number[] = [];
  const port = await resolver(t, (query, from, reply) => {
    ports.push(from);
    reply(response(query, [a(dnsPacket.decode(query).questions?.[0]?.name ?? '', '192.0.2.55')]));
  });
  const m = await meridian(t, port);
  for (let i = 0; i < 6; i++) {
    const r = await dig(m.dnsPort, [`n${i}.test`]);
    t.equal(r.answers[0]?.data, '192.0.2.55', `n${i}.test answered`);
  }
  t.equal(ports.length, 6, 'six questions, six upstream queries');
  t.equal(new Set(ports).size, 6, `six distinct source ports: ${ports.join(', ')}`);
  t.notOk(ports.includes(m.dnsPort), 'never the listener port');
});

t.test('answers from another port or for another question are dropped and counted; the real one is taken', async (t) => {
  let mode: 'spoof-then-real' | 'only-spoofs' | 'unencodable' = 'spoof-then-real';
  const port = await resolver(t, (query, _from, reply) => {
    const name = dnsPacket.decode(query).questions?.[0]?.name ?? '';
    if (mode === 'unencodable') {
      // An SSHFP record with no data: dns-packet decodes it but cannot encode it again.
      const good = response(query, []);
      const record = Buffer.from('00002c00010000003c0000', 'hex');
      const message = Buffer.concat([good, record]);
      message.writeUInt16BE(1, 6);
      reply(message);
      return;
    }
    reply(response(query, [a(name, '192.0.2.66')]), spoofer as Socket); // right id and question, wrong port
    reply(response(query, [a('evil.test', '192.0.2.67')], { name: 'evil.test' })); // right port and id, wrong question
    if (mode === 'spoof-then-real') setTimeout(() => reply(response(query, [a(name, '192.0.2.55')])), 50);
  });
  const m = await meridian(t, port);
  const r = await dig(m.dnsPort, ['target.test']);
  t.equal(r.status, 'NOERROR');
  t.same(r.answers.map((x) => x.data), ['192.0.2.55'], 'only the real answer got through');
  const state = await getJson<{ dns: { forwardDropped: number } }>(m.adminPort, '/api/v1/state');
  t.equal(state.dns.forwardDropped, 2, 'both spoofs counted');

  mode = 'only-spoofs';
  const failed = await dig(m.dnsPort, ['lonely.test', '+time=5']);
  t.equal(failed.status, 'SERVFAIL', 'nothing but spoofs: SERVFAIL once the forwarder times out');
  t.not(failed.edns, null, 'the SERVFAIL carries the OPT');
  t.same(failed.answers, []);

  mode = 'unencodable';
  const broken = await dig(m.dnsPort, ['broken.test']);
  t.equal(broken.status, 'SERVFAIL', 'an answer that cannot be re-encoded: SERVFAIL, not a lost query');
  const still = await dig(m.dnsPort, ['www.example.com']);
  t.equal(still.answers[0]?.data, '203.0.113.10', 'the server still answers');
});
