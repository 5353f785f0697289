import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { DiskAcmeStore } from '../src/acme/disk-store.js';
import { EtcdAcmeStore } from '../src/acme/etcd-store.js';
import { renewalTime } from '../src/acme/renewer.js';
import { open, readEncryptionKey, seal } from '../src/acme/sealed.js';
import type { SharedChallenge } from '../src/acme/store.js';
import { startEtcd } from './helpers/etcd.js';
import { waitFor } from './helpers/poll.js';

const dir = mkdtempSync(join(tmpdir(), 'meridian-acme-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('encryption key files and sealing', async (t) => {
  const key = randomBytes(32);
  writeFileSync(join(dir, 'hex.key'), `${key.toString('hex')}\n`);
  writeFileSync(join(dir, 'b64.key'), key.toString('base64'));
  writeFileSync(join(dir, 'short.key'), randomBytes(16).toString('hex'));
  t.same(readEncryptionKey(join(dir, 'hex.key')), key, '64 hex digits');
  t.same(readEncryptionKey(join(dir, 'b64.key')), key, 'base64');
  t.throws(() => readEncryptionKey(join(dir, 'short.key')), /must hold 32 bytes/, 'a short key is refused');
  t.throws(() => readEncryptionKey(join(dir, 'absent.key')), /cannot read the ACME encryption key .*ENOENT/, 'a missing file is named');
  const sealed = seal(key, 'a.example.test', 'secret');
  t.equal(open(key, 'a.example.test', sealed), 'secret', 'opens with the key and the name');
  t.throws(() => open(key, 'b.example.test', sealed), /cannot decrypt the private key of b.example.test/, 'not under another name');
  t.throws(() => open(randomBytes(32), 'a.example.test', sealed), /not the key it was stored with/, 'not with another key');
});

t.test('renewal time: renewBefore, or a third of the lifetime when shorter', async (t) => {
  const notBefore = new Date(0);
  t.equal(renewalTime({ notBefore, notAfter: new Date(90 * 86_400_000) }, 30 * 86_400_000), 60 * 86_400_000, 'a 90-day certificate at day 60');
  t.equal(renewalTime({ notBefore, notAfter: new Date(6 * 86_400_000) }, 30 * 86_400_000), 4 * 86_400_000, 'a 6-day certificate at day 4');
  t.equal(renewalTime({ notBefore, notAfter: new Date(90 * 86_400_000) }, 86_400_000), 89 * 86_400_000, 'a short renewBefore');
});

t.test('disk store', async (t) => {
  const store = new DiskAcmeStore(join(dir, 'disk'));
  t.equal(await store.loadAccount(), null, 'no account yet');
  t.equal(await store.load('a.example.test'), null, 'no certificate yet');
  await store.saveAccount('ACCOUNT');
  await store.save('a.example.test', { cert: 'CERT', key: 'KEY' });
  t.equal(await store.loadAccount(), 'ACCOUNT');
  t.same(await store.load('a.example.test'), { cert: 'CERT', key: 'KEY' });
  t.equal(await store.exclusive(async () => 7), 7, 'a lone node needs no lock');
  await store.shareChallenge();
  await store.watch();
  await store.close();
});

t.test('etcd store: sealed values, shared challenges, one holder of the lock at a time', { timeout: 60_000 }, async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const key = randomBytes(32);
  const a = new EtcdAcmeStore(new Etcd3({ hosts: etcd.url }), '/m/', key, 'node-a');
  const b = new EtcdAcmeStore(new Etcd3({ hosts: etcd.url }), '/m/', key, 'node-b');
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const seenCerts: string[] = [];
  const seenChallenges: SharedChallenge[] = [];
  await b.watch({ certificate: (name) => seenCerts.push(name), challenge: (change) => seenChallenges.push(change) });

  t.equal(await a.loadAccount(), null);
  await a.saveAccount('ACCOUNT KEY');
  t.equal(await b.loadAccount(), 'ACCOUNT KEY', 'the other node reads the account');
  const cert = readPem();
  await a.save('a.example.test', cert);
  t.same(await b.load('a.example.test'), cert, 'and the certificate');
  await waitFor(() => seenCerts.includes('a.example.test'), 'the watch to report the certificate');

  await a.shareChallenge({ kind: 'http', token: 'tok', keyAuthorization: 'tok.auth' });
  await a.shareChallenge({ kind: 'alpn', name: 'a.example.test', pem: { cert: 'C', key: 'K' } });
  await waitFor(() => seenChallenges.length >= 2, 'the challenges to reach the other node');
  t.same(seenChallenges.slice(0, 2), [
    { kind: 'http', token: 'tok', keyAuthorization: 'tok.auth' },
    { kind: 'alpn', name: 'a.example.test', pem: { cert: 'C', key: 'K' } },
  ]);
  await a.shareChallenge({ kind: 'http', token: 'tok', keyAuthorization: null });
  await a.shareChallenge({ kind: 'alpn', name: 'a.example.test', pem: null });
  await b.shareChallenge({ kind: 'http', token: 'never-shared', keyAuthorization: null });
  await waitFor(() => seenChallenges.length >= 4, 'the withdrawals');
  t.same(seenChallenges.slice(2, 4), [{ kind: 'http', token: 'tok', keyAuthorization: null }, { kind: 'alpn', name: 'a.example.test', pem: null }]);

  const client = new Etcd3({ hosts: etcd.url });
  t.teardown(() => client.close());
  await client.put('/m/certs/bad.example.test').value('not json');
  await t.rejects(b.load('bad.example.test'), /\/m\/certs\/bad.example.test is not a JSON object/, 'garbage is named');
  await client.put('/m/certs/bad.example.test').value('{"cert": 1}');
  await t.rejects(b.load('bad.example.test'), /needs "cert"/);
  await client.put('/m/acme/challenges/other/x').value('{}');
  await client.put('/m/acme/challenges/alpn/y').value('{"cert": "C"}');

  // One holder at a time: b waits for a's work to end.
  const order: string[] = [];
  let release: () => void = () => undefined;
  const holding = a.exclusive(() => new Promise<void>((resolve) => {
    order.push('a starts');
    release = () => {
      order.push('a ends');
      resolve();
    };
  }));
  await waitFor(() => order.length === 1, 'a to hold the lock');
  const waiting = b.exclusive(async () => void order.push('b runs'));
  setTimeout(() => release(), 300);
  await Promise.all([holding, waiting]);
  t.same(order, ['a starts', 'a ends', 'b runs'], 'the second node ran after the first released the lock');
});

/** A real certificate and key (the etcd store reads notAfter from the certificate). */
function readPem(): { cert: string; key: string } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'a.key'), '-out', join(dir, 'a.pem'), '-days', '2', '-subj', '/CN=a.example.test'], { stdio: 'ignore', timeout: 20_000 });
  return { cert: readFileSync(join(dir, 'a.pem'), 'utf8'), key: readFileSync(join(dir, 'a.key'), 'utf8') };
}
