import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import t, { type Test } from 'tap';
import { getJson, send } from './helpers/client.js';
import { dig } from './helpers/dig.js';
import { rawQuery, udpExchange } from './helpers/dns-raw.js';
import { startTestMeridian, type TestMeridian } from './helpers/meridian.js';
import { waitFor } from './helpers/poll.js';
import { startUpstream, type TestUpstream } from './helpers/upstream.js';

const BULK_V6 = Array.from({ length: 80 }, (_, i) => `2001:db8:b::${(i + 1).toString(16)}`);
const EDGE_REGION: Record<string, string> = {
  '203.0.113.10': 'eu-west',
  '203.0.113.20': 'us-east',
  '203.0.113.30': 'ap-south',
  '2001:db8::10': 'eu-west',
  '2001:db8::30': 'ap-south',
};
const REGIONS = {
  'eu-west': { location: { lat: 53.35, lon: -6.26 }, edge: { ipv4: ['203.0.113.10'], ipv6: ['2001:db8::10'] } },
  'us-east': { location: { lat: 38.9, lon: -77.04 }, edge: { ipv4: ['203.0.113.20'] } },
  'ap-south': { location: { lat: 19.08, lon: 72.88 }, edge: { ipv4: ['203.0.113.30'], ipv6: ['2001:db8::30'] } },
  bulk: { location: { lat: 0, lon: 0 }, edge: { ipv6: BULK_V6 } },
};
const FAST_CHECKS = { interval: '200ms', timeout: '150ms', healthyThreshold: 1, unhealthyThreshold: 1 };
const DNS = { listen: '127.0.0.1:0', ttl: '30s', zones: [{ name: 'example.com', nameservers: ['ns1.example.com', 'ns2.example.com'] }] };
const GEO = {
  networks: [
    { cidr: '10.1.0.0/16', region: 'eu-west' },
    { cidr: '10.2.0.0/16', region: 'us-east' },
    { cidr: '10.3.0.0/16', location: { lat: 1.35, lon: 103.82 } },
  ],
};

async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function upstreams(t: Test, n: number): Promise<TestUpstream[]> {
  const ups = await Promise.all(Array.from({ length: n }, (_, i) => startUpstream(`up${i}`)));
  t.teardown(async () => {
    for (const up of ups) await up.kill();
  });
  return ups;
}

function routes(ups: TestUpstream[], dead: number): Record<string, unknown> {
  const [eu, us, ap, bulk] = ups.map((u) => u.address) as [string, string, string, string];
  return {
    regions: REGIONS,
    services: {
      web: { healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [eu], 'us-east': [us], 'ap-south': [ap] } } } },
      api: { steering: 'failover', failover: ['us-east', 'eu-west'], healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [eu], 'us-east': [us] } } } },
      bulk: { healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { bulk: [bulk] } } } },
      strict: { whenAllDown: 'fail', healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [`127.0.0.1:${dead}`] } } } },
      lax: { whenAllDown: 'try-all', healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [`127.0.0.1:${dead}`] } } } },
    },
    routes: {
      www: { hosts: ['www.example.com', '*.geo.example.com', 'a.b.example.com'], service: 'web' },
      api: { hosts: ['api.example.com'], service: 'api' },
      bulk: { hosts: ['bulk.example.com'], service: 'bulk' },
      strict: { hosts: ['strict.example.com'], service: 'strict' },
      lax: { hosts: ['lax.example.com'], service: 'lax' },
      other: { hosts: ['www.example.org'], service: 'web' },
    },
  };
}

async function meridian(t: Test, doc: Record<string, unknown>, dns: Record<string, unknown> = {}): Promise<TestMeridian & { dnsPort: number }> {
  const m = await startTestMeridian(doc, { node: { location: { lat: 51.51, lon: -0.13 } }, proxy: { debugHeaders: true }, dns: { ...DNS, ...dns }, geo: GEO });
  t.teardown(() => m.close());
  if (m.dnsPort === null) throw new Error('dns not listening');
  return m as TestMeridian & { dnsPort: number };
}

function rcodeOf(answer: Buffer): number {
  return answer.readUInt16BE(2) & 0xf;
}

t.test('GeoDNS against a routing table, through real dig', async (t) => {
  const ups = await upstreams(t, 4);
  const dead = await deadPort();
  const m = await meridian(t, routes(ups, dead));
  const port = m.dnsPort;
  // Every endpoint with a live upstream passes its first check at once; until a region's has, its answers carry half the TTL.
  for (const [subnet, address] of [['10.1.0.0/24', '203.0.113.10'], ['10.2.0.0/24', '203.0.113.20'], ['10.3.0.0/24', '203.0.113.30']]) {
    await waitFor(async () => {
      const first = (await dig(port, ['www.example.com', `+subnet=${subnet}`])).answers[0];
      return first !== undefined && first.data === address && first.ttl === 30;
    }, `the region answering ${subnet} to be checked healthy`);
  }

  t.test('A by client subnet, echoing the scope the answer holds for', async (t) => {
    const cases: [string, string, string][] = [
      ['10.1.0.0/24', '203.0.113.10', '10.1.0.0/24/16'],
      ['10.2.0.0/24', '203.0.113.20', '10.2.0.0/24/16'],
      ['10.3.9.0/24', '203.0.113.30', '10.3.9.0/24/16'], // Singapore: Mumbai is nearest
      ['192.0.2.0/24', '203.0.113.10', '192.0.2.0/24/1'], // unknown: the node (London) decides, for all of 128.0.0.0/1
      ['10.2.3.4/16', '203.0.113.20', '10.2.0.0/16/16'], // host bits cleared
      ['2001:db8:1::/48', '203.0.113.10', '2001:db8:1::/48/0'], // no IPv6 network: the same answer for every IPv6 client
    ];
    for (const [subnet, address, echoed] of cases) {
      const r = await dig(port, ['www.example.com', `+subnet=${subnet}`]);
      t.equal(r.status, 'NOERROR', subnet);
      t.ok(r.flags.has('aa'), `${subnet}: authoritative`);
      t.same(r.answers.map((a) => [a.type, a.data, a.ttl]), [['A', address, 30]], subnet);
      t.equal(r.subnet, echoed, `${subnet}: ECS echoed with its scope`);
    }
    const zero = await dig(port, ['www.example.com', '+subnet=0.0.0.0/0']);
    t.equal(zero.subnet, '0.0.0.0/0/0', 'a /0 subnet asks not to be located: scope 0');
    const failover = await dig(port, ['api.example.com', '+subnet=10.1.0.0/24']);
    t.equal(failover.answers[0]?.data, '203.0.113.20', 'failover steering ignores the client');
    t.equal(failover.subnet, '10.1.0.0/24/0', 'an answer that does not depend on the client has scope 0');
    const plain = await dig(port, ['www.example.com']);
    t.equal(plain.answers[0]?.data, '203.0.113.10', 'without ECS the source address (127.0.0.1, unknown) decides');
    t.equal(plain.subnet, null, 'no ECS in, none out');
    t.equal(plain.edns?.udp, 1232, 'OPT echoed with our UDP size');
    const wildcard = await dig(port, ['deep.geo.example.com', '+subnet=10.2.0.0/24']);
    t.same(wildcard.answers.map((a) => [a.name, a.data]), [['deep.geo.example.com.', '203.0.113.20']], 'wildcard route hosts answer');
    const mixedCase = await dig(port, ['WwW.ExAmPlE.CoM', '+subnet=10.2.0.0/24']);
    t.equal(mixedCase.answers[0]?.name, 'WwW.ExAmPlE.CoM.', 'the owner name keeps the case asked (0x20)');
  });

  t.test('AAAA from the nearest region that has IPv6 edges', async (t) => {
    const eu = await dig(port, ['www.example.com', 'AAAA', '+subnet=10.1.0.0/24']);
    t.same(eu.answers.map((a) => [a.type, a.data]), [['AAAA', '2001:db8::10']]);
    const us = await dig(port, ['www.example.com', 'AAAA', '+subnet=10.2.0.0/24']);
    t.same(us.answers.map((a) => a.data), ['2001:db8::10'], 'us-east has no IPv6 edge: the next nearest (Dublin) that has one');
    const sg = await dig(port, ['www.example.com', 'AAAA', '+subnet=10.3.0.0/24']);
    t.same(sg.answers.map((a) => a.data), ['2001:db8::30']);
  });

  t.test('TCP, and several queries on one connection', async (t) => {
    const r = await dig(port, ['www.example.com', '+tcp', '+subnet=10.2.0.0/24']);
    t.equal(r.transport, 'TCP');
    t.same(r.answers.map((a) => a.data), ['203.0.113.20']);
    const socket = connect(port, '127.0.0.1');
    t.teardown(() => socket.destroy());
    const frames = ['www.example.com', 'api.example.com', 'nope.example.com'].map((name, i) => {
      const q = dnsPacket.encode({ type: 'query', id: 100 + i, questions: [{ type: 'A', name }] });
      const length = Buffer.alloc(2);
      length.writeUInt16BE(q.length);
      return Buffer.concat([length, q]);
    });
    // All three in one write, the last one split across two writes.
    const all = Buffer.concat(frames);
    socket.write(all.subarray(0, all.length - 5));
    setTimeout(() => socket.write(all.subarray(all.length - 5)), 50);
    const answers = await new Promise<Buffer[]>((resolve) => {
      let buffer = Buffer.alloc(0);
      const got: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
          got.push(buffer.subarray(2, 2 + buffer.readUInt16BE(0)));
          buffer = buffer.subarray(2 + buffer.readUInt16BE(0));
        }
        if (got.length === 3) resolve(got);
      });
    });
    const decoded = answers.map((a) => dnsPacket.decode(a));
    t.same(decoded.map((d) => d.id).sort(), [100, 101, 102]);
    t.same(decoded.map((d) => (d.flags ?? 0) & 0xf).sort(), [0, 0, 3]);
  });

  t.test('truncation sets TC and keeps the OPT; the TCP retry gets everything', async (t) => {
    const udp = await dig(port, ['bulk.example.com', 'AAAA', '+ignore', '+bufsize=4096']);
    t.ok(udp.flags.has('tc'), 'TC set: 80 AAAA records exceed 1232 bytes');
    t.equal(udp.answers.length, 0, 'a truncated answer carries no records');
    t.equal(udp.edns?.udp, 1232, 'the OPT is kept');
    const noEdns = await dig(port, ['bulk.example.com', 'AAAA', '+ignore', '+noedns']);
    t.ok(noEdns.flags.has('tc'), 'TC without EDNS too (512 bytes)');
    t.equal(noEdns.edns, null, 'no OPT when the query had none');
    const small = await dig(port, ['www.example.com', 'A', '+noedns']);
    t.notOk(small.flags.has('tc'), 'a small answer is not truncated at 512');
    const retried = await dig(port, ['bulk.example.com', 'AAAA']);
    t.equal(retried.transport, 'TCP', 'dig retried over TCP');
    t.equal(retried.answers.length, 80);
    t.same(new Set(retried.answers.map((a) => a.data)), new Set(BULK_V6.map((a) => a.replace('2001:db8:b::', '2001:db8:b::'))));
  });

  t.test('EDNS version above 0 gets BADVERS with a version 0 OPT', async (t) => {
    const r = await dig(port, ['www.example.com', '+edns=1', '+noednsnegotiation']);
    t.equal(r.status, 'BADVERS');
    t.equal(r.edns?.version, 0);
    t.equal(r.answers.length, 0);
  });

  t.test('SOA and NS at the apex, NXDOMAIN, NODATA, REFUSED, ANY', async (t) => {
    const soa = await dig(port, ['example.com', 'SOA']);
    const revision = m.meridian.applier.current?.revision;
    t.equal(soa.status, 'NOERROR');
    t.match(soa.answers[0]?.data, `ns1.example.com. hostmaster.example.com. ${revision} 3600 600 604800 30`, 'serial = routing-table revision');
    const ns = await dig(port, ['example.com', 'NS']);
    t.same(ns.answers.map((a) => a.data).sort(), ['ns1.example.com.', 'ns2.example.com.']);
    const nx = await dig(port, ['nope.example.com']);
    t.equal(nx.status, 'NXDOMAIN');
    t.ok(nx.flags.has('aa'));
    t.same(nx.authority.map((a) => a.type), ['SOA'], 'the SOA rides in authority for negative caching');
    const nodata = await dig(port, ['www.example.com', 'MX']);
    t.equal(nodata.status, 'NOERROR');
    t.equal(nodata.answers.length, 0);
    t.same(nodata.authority.map((a) => a.type), ['SOA']);
    const between = await dig(port, ['b.example.com', 'A']);
    t.equal(between.status, 'NOERROR', 'a name with route hosts below it exists (RFC 8020): NODATA, not NXDOMAIN');
    const apexA = await dig(port, ['example.com', 'A']);
    t.equal(apexA.status, 'NOERROR');
    t.equal(apexA.answers.length, 0);
    const outside = await dig(port, ['www.example.org']);
    t.equal(outside.status, 'REFUSED', 'route hosts outside every zone are not answered; without forwarders, REFUSED');
    t.notOk(outside.flags.has('aa'));
    const any = await dig(port, ['www.example.com', 'ANY', '+subnet=10.2.0.0/24']);
    t.same(any.answers.map((a) => [a.type, a.data]), [['A', '203.0.113.20']], 'ANY answered with one RRset (RFC 8482)');
    const anyApex = await dig(port, ['example.com', 'ANY']);
    t.same(anyApex.answers.map((a) => a.type), ['SOA']);
    const axfr = await dig(port, ['example.com', 'AXFR']);
    t.match(axfr.raw, /Transfer failed|REFUSED/, 'no zone transfers');
  });

  t.test('NOTIMP for other opcodes, FORMERR for malformed questions and client subnets', async (t) => {
    const notify = await dig(port, ['www.example.com', '+opcode=4']);
    t.equal(notify.status, 'NOTIMP');
    const two = await udpExchange(port, rawQuery({ questions: [{ type: 'A', name: 'www.example.com' }, { type: 'A', name: 'api.example.com' }] }));
    t.equal(rcodeOf(two), 1, 'two questions: FORMERR');
    t.equal(two.readUInt16BE(0), 4242, 'with the query id');
    const none = await udpExchange(port, rawQuery({ questions: [] }));
    t.equal(rcodeOf(none), 1, 'no question: FORMERR');
    const garbage = Buffer.concat([rawQuery({ questions: [{ type: 'A', name: 'www.example.com' }] }).subarray(0, 20)]);
    t.equal(rcodeOf(await udpExchange(port, garbage)), 1, 'a question cut short: FORMERR');
    const ecs = (data: number[]): Buffer =>
      rawQuery({
        questions: [{ type: 'A', name: 'www.example.com' }],
        additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [{ code: 8, data: Buffer.from(data) }] as never }],
      });
    t.equal(rcodeOf(await udpExchange(port, ecs([0, 1, 40, 0, 10, 1, 0, 0, 0]))), 1, 'IPv4 /40: FORMERR');
    t.equal(rcodeOf(await udpExchange(port, ecs([0, 3, 8, 0, 10]))), 1, 'family 3: FORMERR');
    t.equal(rcodeOf(await udpExchange(port, ecs([0, 1, 24, 0, 10, 1]))), 1, 'two address bytes for a /24: FORMERR');
    const goodBytes = await udpExchange(port, ecs([0, 1, 16, 0, 10, 2]));
    t.equal(rcodeOf(goodBytes), 0);
    const good = dnsPacket.decode(goodBytes);
    t.same(good.answers?.map((a) => (a as { data: string }).data), ['203.0.113.20']);
    const counts = Buffer.from('00000000ffffffffffffffff00', 'hex');
    t.equal(rcodeOf(await udpExchange(port, counts)), 1, 'section counts the message cannot hold: FORMERR before decoding');
    const trailing = Buffer.concat([rawQuery({ questions: [{ type: 'A', name: 'www.example.com' }] }), Buffer.alloc(10)]);
    t.equal(rcodeOf(await udpExchange(port, trailing)), 1, 'bytes after the last record: FORMERR (and nothing cached under them)');
    const response = rawQuery({ questions: [{ type: 'A', name: 'www.example.com' }] });
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    await t.rejects(udpExchange(port, response), /no answer/, 'a response is never answered (no loops)');
  });

  t.test('whenAllDown: fail answers SERVFAIL, try-all answers with a short TTL', async (t) => {
    await waitFor(async () => (await dig(port, ['strict.example.com'])).status === 'SERVFAIL', 'strict service down');
    const lax = await dig(port, ['lax.example.com']);
    t.equal(lax.status, 'NOERROR');
    t.same(lax.answers.map((a) => [a.data, a.ttl]), [['203.0.113.10', 15]], 'try-all: still answered, TTL halved');
  });

  t.test('metrics and state', async (t) => {
    const metrics = (await send(m.adminPort, { path: '/metrics' })).text;
    t.match(metrics, /meridian_dns_queries_total\{transport="udp",qtype="A",rcode="NOERROR"\} \d+/);
    t.match(metrics, /meridian_dns_queries_total\{transport="tcp",qtype="AAAA",rcode="NOERROR"\} \d+/);
    t.match(metrics, /meridian_dns_queries_total\{transport="udp",qtype="NONE",rcode="FORMERR"\} \d+/);
    t.match(metrics, /meridian_dns_truncated_total [1-9]/);
    t.match(metrics, /meridian_dns_answer_seconds_count\{transport="udp"\} [1-9]/);
    const state = await getJson<{ dns: { zones: string[]; queries: number; truncated: number; listen: { port: number } } }>(m.adminPort, '/api/v1/state');
    t.same(state.dns.zones, ['example.com']);
    t.equal(state.dns.listen.port, port);
    t.ok(state.dns.queries > 20, `queries counted (${state.dns.queries})`);
    t.ok(state.dns.truncated >= 2);
  });
});

t.test('a region whose upstreams die leaves the answers within a check period; DNS and HTTP agree', async (t) => {
  const ups = await upstreams(t, 4);
  const m = await meridian(t, routes(ups, await deadPort()), { ttl: '20s' });
  const port = m.dnsPort;
  const clients = ['10.1.0.7', '10.2.0.7', '10.3.0.7', '192.0.2.7'];
  const agree = async (): Promise<string[]> => {
    const regions: string[] = [];
    for (const ip of clients) {
      const answer = await dig(port, ['www.example.com', `+subnet=${ip}/32`]);
      const http = await send(m.port, { headers: { host: 'www.example.com', 'x-forwarded-for': ip } });
      const viaDns = EDGE_REGION[answer.answers[0]?.data ?? ''];
      t.equal(viaDns, http.headers['x-meridian-region'], `${ip}: DNS and HTTP choose the same region`);
      regions.push(viaDns ?? 'none');
    }
    return regions;
  };
  await waitFor(async () => (await dig(port, ['www.example.com', '+subnet=10.2.0.0/24'])).answers[0]?.data === '203.0.113.20', 'all healthy');
  t.same(await agree(), ['eu-west', 'us-east', 'ap-south', 'eu-west']);
  const before = await dig(port, ['www.example.com', '+subnet=10.1.0.0/24']);
  t.equal(before.answers[0]?.ttl, 20, 'healthy: the configured TTL');

  await (ups[0] as TestUpstream).kill(); // eu-west
  const killedAt = Date.now();
  const moved = await waitFor(
    async () => {
      const r = await dig(port, ['www.example.com', '+subnet=10.1.0.0/24']);
      return r.answers[0]?.data === '203.0.113.10' ? null : r;
    },
    'answer moved off eu-west',
    3_000,
    20,
  );
  t.comment(`answer moved ${Date.now() - killedAt} ms after the kill (check interval 200 ms)`);
  t.equal(EDGE_REGION[moved.answers[0]?.data ?? ''], 'us-east', 'Dublin clients go to the next nearest region');
  t.equal(moved.answers[0]?.ttl, 10, 'degraded (not the first choice): TTL halved');
  t.same(await agree(), ['us-east', 'us-east', 'ap-south', 'us-east']);
});

t.test('forwarders: names outside the zones are forwarded and cached; REFUSED stays the default', async (t) => {
  const resolver = createSocket('udp4');
  let asked = 0;
  resolver.on('message', (message, peer) => {
    asked++;
    const q = dnsPacket.decode(message);
    const question = q.questions?.[0];
    const known = question?.name === 'other.test';
    const answer = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: q.questions,
      answers: known ? [{ name: 'other.test', type: 'A', ttl: 300, data: '192.0.2.55' }] : [],
      authorities: known ? [] : [{ name: 'test', type: 'SOA', ttl: 60, data: { mname: 'ns.test', rname: 'root.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }],
    });
    resolver.send(answer, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => resolver.bind(0, '127.0.0.1', resolve));
  t.teardown(() => resolver.close());
  const ups = await upstreams(t, 4);
  const m = await meridian(t, routes(ups, await deadPort()), { forwarders: [`127.0.0.1:${resolver.address().port}`] });
  const first = await dig(m.dnsPort, ['other.test']);
  t.equal(first.status, 'NOERROR');
  t.same(first.answers.map((a) => [a.data, a.ttl]), [['192.0.2.55', 300]]);
  t.ok(first.flags.has('ra'), 'recursion available');
  t.notOk(first.flags.has('aa'), 'not authoritative for forwarded names');
  const second = await dig(m.dnsPort, ['OTHER.test']);
  t.equal(second.answers[0]?.data, '192.0.2.55');
  t.equal(asked, 1, 'the second answer came from the cache');
  const missing = await dig(m.dnsPort, ['missing.test']);
  t.equal(missing.status, 'NXDOMAIN');
  await dig(m.dnsPort, ['missing.test']);
  t.equal(asked, 2, 'negative answers are cached too (SOA minimum)');
  const inZone = await dig(m.dnsPort, ['www.example.com']);
  t.ok(inZone.flags.has('aa'), 'zone names stay authoritative');
  const state = await getJson<{ dns: { forwarded: number; cached: number; cacheEntries: number } }>(m.adminPort, '/api/v1/state');
  t.same([state.dns.forwarded, state.dns.cached, state.dns.cacheEntries], [2, 2, 2]);

  const silent = await meridian(t, routes(ups, await deadPort()), { forwarders: [`127.0.0.1:${await deadPort()}`] });
  const failed = await dig(silent.dnsPort, ['other.test', '+time=5']);
  t.equal(failed.status, 'SERVFAIL', 'no forwarder answered: SERVFAIL');
});

t.test('forwarders: a truncated UDP answer is fetched again over TCP', async (t) => {
  const records = Array.from({ length: 60 }, (_, i) => ({ name: 'many.test', type: 'AAAA' as const, ttl: 120, data: `2001:db8:f::${(i + 1).toString(16)}` }));
  const answerFor = (message: Buffer, truncated: boolean): Buffer => {
    const q = dnsPacket.decode(message);
    return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0), questions: q.questions, answers: truncated ? [] : records });
  };
  let tcpQueries = 0;
  // One port for both transports: a UDP port whose TCP twin another socket holds is given up for the next.
  let port = 0;
  for (let attempt = 0; port === 0; attempt++) {
    const udp = createSocket('udp4');
    udp.on('message', (message, peer) => udp.send(answerFor(message, true), peer.port, peer.address));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tcp = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        tcpQueries++;
        const answer = answerFor(chunk.subarray(2, 2 + chunk.readUInt16BE(0)), false);
        const length = Buffer.alloc(2);
        length.writeUInt16BE(answer.length);
        socket.end(Buffer.concat([length, answer]));
      });
    });
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(udp.address().port, '127.0.0.1', () => resolve(true));
    });
    if (!listening) {
      udp.close();
      if (attempt >= 20) throw new Error('no port free for both UDP and TCP');
      continue;
    }
    port = udp.address().port;
    t.teardown(() => {
      udp.close();
      tcp.close();
    });
  }
  const ups = await upstreams(t, 4);
  const m = await meridian(t, routes(ups, await deadPort()), { forwarders: [`127.0.0.1:${port}`] });
  const r = await dig(m.dnsPort, ['many.test', 'AAAA', '+tcp']);
  t.equal(r.status, 'NOERROR');
  t.equal(r.answers.length, 60, 'all 60 records, fetched from the forwarder over TCP');
  t.equal(tcpQueries, 1);
});

t.test('TCP connections: a cap, and idle ones are closed', async (t) => {
  const ups = await upstreams(t, 4);
  const m = await meridian(t, routes(ups, await deadPort()), { tcpIdleTimeout: '300ms', maxTcpConnections: 2 });
  const open = (): Promise<{ closedAfterMs: Promise<number> }> =>
    new Promise((resolve) => {
      const socket = connect(m.dnsPort, '127.0.0.1', () => {
        const at = Date.now();
        resolve({ closedAfterMs: new Promise((done) => socket.on('close', () => done(Date.now() - at))) });
      });
      socket.on('error', () => socket.destroy());
      t.teardown(() => socket.destroy());
    });
  const a = await open();
  const b = await open();
  await waitFor(async () => (await getJson<{ dns: { tcpConnections: number } }>(m.adminPort, '/api/v1/state')).dns.tcpConnections === 2, 'two connections');
  const c = await open();
  t.ok((await c.closedAfterMs) < 250, 'a connection over the cap is closed at once');
  const [idleA, idleB] = await Promise.all([a.closedAfterMs, b.closedAfterMs]);
  t.ok(idleA >= 250 && idleB >= 250, `idle connections closed after the idle timeout (${idleA}, ${idleB} ms)`);
});

t.test('configuration errors', async (t) => {
  await t.rejects(startTestMeridian({ regions: {}, services: {}, routes: {} }, { dns: { ...DNS, forwarders: ['resolver.example:53'] } }), /ip:port/, 'a forwarder by name is refused');
  await t.rejects(startTestMeridian({ regions: {}, services: {}, routes: {} }, { dns: { listen: '127.0.0.1:0', zones: [] } }), /at least one zone/);
});

t.test('repeated questions: answers follow table edits at once, weighted steering is drawn per query', async (t) => {
  const ups = await upstreams(t, 4);
  const doc = routes(ups, await deadPort());
  const services = doc.services as Record<string, Record<string, unknown>>;
  services.dial = { steering: 'weighted', regionWeights: { 'eu-west': 50, 'us-east': 50 }, healthCheck: FAST_CHECKS, versions: { stable: { endpoints: { 'eu-west': [ups[0]?.address], 'us-east': [ups[1]?.address] } } } };
  (doc.routes as Record<string, unknown>).dial = { hosts: ['dial.example.com'], service: 'dial' };
  const m = await meridian(t, doc);
  await waitFor(async () => (await dig(m.dnsPort, ['www.example.com', '+subnet=10.2.0.0/24'])).answers[0]?.data === '203.0.113.20', 'healthy');
  for (let i = 0; i < 3; i++) t.equal((await dig(m.dnsPort, ['www.example.com', '+subnet=10.2.0.0/24'])).answers[0]?.data, '203.0.113.20', `repeat ${i}`);
  const edited = structuredClone(doc);
  ((edited.regions as Record<string, { edge: { ipv4: string[] } }>)['us-east'] as { edge: { ipv4: string[] } }).edge.ipv4 = ['198.51.100.20'];
  const revision = m.meridian.applier.current?.revision ?? 0;
  await m.writeRoutes(edited);
  await waitFor(() => (m.meridian.applier.current?.revision ?? 0) > revision, 'edit applied');
  t.equal((await dig(m.dnsPort, ['www.example.com', '+subnet=10.2.0.0/24'])).answers[0]?.data, '198.51.100.20', 'the first answer after the swap is the new one');
  const seen = new Map<string, number>();
  for (let i = 0; i < 40; i++) {
    const data = (await dig(m.dnsPort, ['dial.example.com'])).answers[0]?.data ?? 'none';
    seen.set(data, (seen.get(data) ?? 0) + 1);
  }
  t.same([...seen.keys()].sort(), ['198.51.100.20', '203.0.113.10'], `both regions answered over 40 identical queries (${JSON.stringify([...seen])})`);
});
