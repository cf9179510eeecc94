// TLS on both sides, with real certificates (made here with the openssl CLI):
// the public listener serves TLS 1.2+ only; an https provider is verified
// against the configured CA file and its host name, and a provider whose
// certificate does not verify is never sent the request.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const dir = mkdtempSync(join(tmpdir(), 'tg-tls-'));
h.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
  '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });

const db = h.createDatabase();
const clientKey = h.createKey(db, 'tls');
const sim = await h.startSim('--completion-tokens', '3');
// The front gateway terminates TLS; it is itself the https "provider" of the others.
const front = await h.startGateway(h.gatewayConfig({
  conninfo: db, providers: [{ name: 'sim', url: sim.url }], models: { chat: [['sim']] },
  gateway: `tls_cert = ${cert}\ntls_key = ${key}\n`,
}));
const env = { TG_IT_FRONT_KEY: clientKey };
const behind = (providerUrl, extra = '') => h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'front', url: providerUrl, apiKey: 'env:TG_IT_FRONT_KEY', extra }],
  models: { chat: [['front', 'chat']] },
}), env);

function httpsPost(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: 'localhost', port, path: '/v1/chat/completions', method: 'POST', ca: readFileSync(cert),
      headers: { Authorization: `Bearer ${clientKey}`, 'Content-Type': 'application/json' }, ...opts }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(h.chatBody()));
  });
}

test('the public listener serves TLS with the configured certificate', async () => {
  const r = await httpsPost(front.port);
  assert.equal(r.status, 200, r.body);
  assert.equal(JSON.parse(r.body).object, 'chat.completion');
});

test('TLS 1.1 and older are refused; plain HTTP on the TLS port gets no answer', async () => {
  await assert.rejects(httpsPost(front.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
  await assert.rejects(fetch(`http://127.0.0.1:${front.port}/healthz`, { signal: AbortSignal.timeout(3000) }));
  const again = await httpsPost(front.port);
  assert.equal(again.status, 200, 'still serving');
});

test('an https provider verified against ca_file and its host name', async () => {
  const gw = await behind(`https://localhost:${front.port}`, `ca_file = ${cert}\n`);
  const r = await h.post(gw, '/v1/chat/completions', clientKey, h.chatBody());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-tollgate-provider'), 'front');
  const s = await h.post(gw, '/v1/chat/completions', clientKey, h.chatBody({ stream: true }));
  assert.equal(h.sseEvents(s.text).at(-1), '[DONE]');
  // keep-alive: several requests over the pooled TLS connections
  const many = await Promise.all(Array.from({ length: 10 }, () => h.post(gw, '/v1/chat/completions', clientKey, h.chatBody())));
  assert.ok(many.every((x) => x.status === 200));
});

test('a certificate that does not verify: nothing is sent, the client gets 502', async () => {
  const before = (await sim.stats()).requests.by_endpoint.chat_completions;
  const wrongName = await behind(`https://127.0.0.1:${front.port}`, `ca_file = ${cert}\n`); // cert is for localhost
  const untrusted = await behind(`https://localhost:${front.port}`); // system store only
  for (const gw of [wrongName, untrusted]) {
    const r = await h.post(gw, '/v1/chat/completions', clientKey, h.chatBody());
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, 'upstream_unavailable');
  }
  assert.equal((await sim.stats()).requests.by_endpoint.chat_completions, before, 'no request went through');
  assert.match(untrusted.logs(), /front/);
});
