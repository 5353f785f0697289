import t from 'tap';
import { clientAddress, plainAddress, type ClientAddress } from '../src/geo/client-address.js';
import { formatIp, parseIp, parseIPv4, parseIPv6, type IpAddress } from '../src/net/ip.js';
import { parseCidr, PrefixMap, type Cidr } from '../src/net/prefix-map.js';

/** Parses a CIDR that must be valid. */
function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/** Parses an address that must be valid. */
function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  if (parsed === null) throw new Error(`not an IP address: ${text}`);
  return parsed;
}

/** A map of trusted blocks, as the proxy builds it from proxy.trustedProxies. */
function trustedMap(...blocks: string[]): PrefixMap<true> {
  const map = new PrefixMap<true>();
  for (const block of blocks) map.add(cidr(block), true);
  return map;
}

function peer(text: string): ClientAddress {
  return { text, ip: parseIp(text) };
}

t.test('clientAddress: the trusted-proxy rule', async (t) => {
  const trusted = trustedMap('127.0.0.0/8', '10.0.0.0/8', 'fd00::/8');
  const lb = peer('10.0.0.2');

  t.same(clientAddress(peer('203.0.113.9'), false, '198.51.100.1', trusted), peer('203.0.113.9'), 'an untrusted peer: X-Forwarded-For is ignored');
  t.same(clientAddress(lb, true, undefined, trusted), lb, 'a trusted peer without X-Forwarded-For: the peer');
  t.same(clientAddress(lb, true, '', trusted), lb, 'an empty X-Forwarded-For: the peer');

  t.same(clientAddress(lb, true, '198.51.100.1', trusted), peer('198.51.100.1'), 'one untrusted entry');
  t.same(
    clientAddress(lb, true, '192.0.2.66, 198.51.100.1, 10.1.1.1, 10.2.2.2', trusted),
    peer('198.51.100.1'),
    'the right-most entry that is not trusted; spoofable entries to its left are ignored',
  );
  t.same(clientAddress(lb, true, '10.3.3.3, 10.1.1.1,10.2.2.2', trusted), peer('10.3.3.3'), 'every hop trusted: the left-most entry');
  t.same(clientAddress(lb, true, ' 198.51.100.1 ,  , 10.1.1.1 ', trusted), peer('198.51.100.1'), 'spaces and empty entries are skipped');

  t.same(clientAddress(lb, true, '198.51.100.1, not-an-ip, 10.1.1.1', trusted), peer('10.1.1.1'), 'a malformed entry stops the walk at the last good hop');
  t.same(clientAddress(lb, true, '198.51.100.1, not-an-ip', trusted), lb, 'a malformed right-most entry: the peer');
  t.same(clientAddress(lb, true, '198.51.100.1, 1.2.3.4:5678', trusted), lb, 'an entry with a port is not an address');
  t.same(clientAddress(lb, true, '198.51.100.1, 010.1.1.1', trusted), lb, 'an entry with a leading zero is not an address');

  const mapped = clientAddress(lb, true, '::ffff:10.1.2.3', trusted);
  t.same(mapped, { text: '10.1.2.3', ip: ip('10.1.2.3') }, 'an IPv4-mapped entry is read as IPv4 (and is trusted here)');
  t.equal(mapped.ip?.family, 4);
  t.same(clientAddress(lb, true, '198.51.100.1, ::ffff:10.1.2.3', trusted), peer('198.51.100.1'), 'a mapped trusted hop is walked past');
  t.same(clientAddress(lb, true, '::ffff:203.0.113.5', trusted), peer('203.0.113.5'), 'an untrusted mapped entry is the client, as plain IPv4');

  t.same(clientAddress(peer('fd00::1'), true, '2001:db8::7, fd12::9', trusted), peer('2001:db8::7'), 'IPv6 hops');
  t.same(clientAddress(lb, true, '2001:db8::7', trustedMap()), peer('2001:db8::7'), 'an empty trusted set stops at the first entry');
});

t.test('plainAddress strips only the IPv4-mapped prefix', async (t) => {
  t.equal(plainAddress('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(plainAddress('::ffff:a01:203'), '::ffff:a01:203', 'hex form is left alone (parseIp maps it)');
  t.equal(plainAddress('10.1.2.3'), '10.1.2.3');
  t.equal(plainAddress('::1'), '::1');
  t.same(parseIp('::ffff:a01:203'), ip('10.1.2.3'), 'hex-form mapped addresses still parse as IPv4');
});

t.test('parseIPv4', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0);
  t.equal(parseIPv4('1.2.3.4'), 0x01020304);
  t.equal(parseIPv4('10.0.0.1'), 0x0a000001, 'an octet of 0 and octets ending in 0 are fine');
  t.equal(parseIPv4('100.200.10.0'), 0x64c80a00);
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff, 'the top address is an unsigned 32-bit number');
  for (const bad of ['01.2.3.4', '1.2.3.04', '1.00.3.4', '256.1.1.1', '1.2.3.256', '1.2.3.1000', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.4.', '', '1.2.3.a', ' 1.2.3.4', '1.2.3.4 ', '-1.2.3.4', '1.2.3.4/8']) {
    t.equal(parseIPv4(bad), -1, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('parseIPv6', async (t) => {
  t.equal(parseIPv6('::'), 0n);
  t.equal(parseIPv6('::1'), 1n);
  t.equal(parseIPv6('1::'), 1n << 112n);
  t.equal(parseIPv6('2001:0db8:0000:0000:0000:0000:0000:0001'), 0x20010db8000000000000000000000001n, 'full form');
  t.equal(parseIPv6('2001:db8::1'), 0x20010db8000000000000000000000001n, 'compressed form');
  t.equal(parseIPv6('2001:DB8:0:0:8:800:200C:417A'), 0x20010db80000000000080800200c417an, 'upper-case hex');
  t.equal(parseIPv6('fe80::1:2'), 0xfe800000000000000000000000010002n);
  t.equal(parseIPv6('1:2:3:4:5:6:7::'), 0x00010002000300040005000600070000n, ':: standing for one group');
  t.equal(parseIPv6('::ffff:1.2.3.4'), 0xffff01020304n, 'embedded IPv4');
  t.equal(parseIPv6('64:ff9b::192.0.2.33'), 0x0064ff9b0000000000000000c0000221n, 'embedded IPv4 after other groups');
  t.equal(parseIPv6('fe80::1%eth0'), 0xfe800000000000000000000000000001n, 'a zone id is ignored');
  t.equal(parseIPv6('fe80::1%25'), 0xfe800000000000000000000000000001n);
  for (const bad of ['1::2::3', '::1::', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '1:2:3:4:5:6:7::8', '1:2:3:4:5:6:7', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '12345::', 'g::1', '::ffff:1.2.3', '::ffff:1.2.3.256', '1.2.3.4::', '']) {
    t.equal(parseIPv6(bad), null, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('parseIp and formatIp', async (t) => {
  t.same(parseIp('10.1.2.3'), { family: 4, value: 0x0a010203 });
  t.same(parseIp('::ffff:10.1.2.3'), { family: 4, value: 0x0a010203 }, 'IPv4-mapped IPv6 becomes IPv4');
  t.same(parseIp('::1'), { family: 6, value: 1n });
  t.equal(parseIp('example.com'), null);
  t.equal(parseIp('1.2.3'), null);
  t.equal(parseIp('::g'), null);
  t.equal(formatIp(ip('10.1.2.3')), '10.1.2.3');
  t.equal(formatIp(ip('255.255.255.255')), '255.255.255.255');
  t.equal(formatIp(ip('2001:db8::1')), '2001:db8:0:0:0:0:0:1');
});

t.test('parseCidr', async (t) => {
  t.equal(cidr('10.1.2.3/8').text, '10.0.0.0/8', 'host bits are masked (IPv4)');
  t.same(cidr('10.1.2.3/8').network, ip('10.0.0.0'));
  t.equal(cidr('192.168.1.129/25').text, '192.168.1.128/25');
  t.equal(cidr('255.255.255.255/1').text, '128.0.0.0/1');
  t.equal(cidr('203.0.113.7/31').text, '203.0.113.6/31');
  t.equal(cidr('1.2.3.4/0').text, '0.0.0.0/0');
  t.equal(cidr('1.2.3.4').text, '1.2.3.4/32', 'a bare address is a host route');
  t.equal(cidr('1.2.3.4/32').prefixLength, 32);
  t.equal(cidr('2001:db8:ffff::1/32').text, '2001:db8:0:0:0:0:0:0/32', 'host bits are masked (IPv6)');
  t.equal(cidr('::1').prefixLength, 128);
  t.equal(cidr('::/0').text, '0:0:0:0:0:0:0:0/0');
  const mapped = cidr('::ffff:10.0.0.0/104');
  t.equal(mapped.family, 4, 'an IPv4-mapped block is stored as IPv4');
  t.equal(mapped.text, '10.0.0.0/8');
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/abc', '10.0.0.0/8/8', '10.0.0.0/1000', '10.0.0/8', 'host/8', '::ffff:10.0.0.0/95', '']) {
    t.type(parseCidr(bad), 'string', `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('PrefixMap: longest prefix wins', async (t) => {
  const map = new PrefixMap<string>();
  map.add(cidr('0.0.0.0/0'), 'v4-default');
  map.add(cidr('10.0.0.0/8'), 'ten');
  map.add(cidr('10.1.0.0/16'), 'ten-one');
  map.add(cidr('10.1.2.3/32'), 'host');
  map.add(cidr('192.168.0.0/24'), 'lan');
  map.add(cidr('2001:db8::/32'), 'doc');
  map.add(cidr('2001:db8:1::/48'), 'doc-1');
  map.add(cidr('2001:db8:1::5/128'), 'doc-host');
  t.equal(map.size, 8);

  t.equal(map.lookup(ip('10.1.2.3')), 'host', 'a /32 host route beats its covering blocks');
  t.equal(map.lookup(ip('10.1.2.4')), 'ten-one');
  t.equal(map.lookup(ip('10.2.0.1')), 'ten');
  t.equal(map.lookup(ip('11.0.0.1')), 'v4-default', '0.0.0.0/0 catches the rest of IPv4');
  t.equal(map.lookup(ip('255.255.255.255')), 'v4-default');
  t.equal(map.lookup(ip('192.168.0.255')), 'lan');
  t.equal(map.lookup(ip('192.168.1.0')), 'v4-default', 'just outside a block');
  t.same(map.lookupMatch(ip('10.1.9.9')), { value: 'ten-one', prefixLength: 16 });

  t.equal(map.lookup(ip('2001:db8:1::5')), 'doc-host', 'a /128 host route');
  t.equal(map.lookup(ip('2001:db8:1::6')), 'doc-1');
  t.equal(map.lookup(ip('2001:db8:2::1')), 'doc');
  t.equal(map.lookup(ip('2001:db9::1')), undefined, 'IPv4 0/0 does not cover IPv6');
  t.equal(map.lookup(ip('::ffff:10.1.2.3')), 'host', 'IPv4-mapped addresses use the IPv4 table');

  map.add(cidr('::/0'), 'v6-default');
  t.equal(map.lookup(ip('2001:db9::1')), 'v6-default', '::/0 catches the rest of IPv6');

  const later = new PrefixMap<string>();
  later.add(cidr('10.0.0.0/8'), 'first');
  later.add(cidr('10.9.9.9/8'), 'second');
  t.equal(later.lookup(ip('10.5.5.5')), 'second', 'a later add of the same block replaces the earlier value');

  const trusted = trustedMap('127.0.0.0/8');
  t.ok(trusted.containsText('127.0.0.1'));
  t.ok(trusted.containsText('::ffff:127.0.0.1'));
  t.notOk(trusted.containsText('128.0.0.1'));
  t.notOk(trusted.containsText('garbage'));
  t.equal(new PrefixMap<true>().lookup(ip('1.2.3.4')), undefined, 'an empty map matches nothing');
});
