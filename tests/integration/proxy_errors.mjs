// Every client-side failure gets OpenAI's error shape and the right status;
// authenticated requests still get exactly one usage row; nothing crashes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'beta', '--models', 'chat');
const sim = await h.startSim();
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'sim', url: sim.url }],
  models: { chat: [['sim']], secret: [['sim']] },
  gateway: 'max_body_bytes = 65536\nmax_header_bytes = 8192\nclient_timeout_ms = 1000\n',
}));

function assertOpenAIError(r, status, code, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, `error body: ${r.text}`);
  const e = r.json.error;
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  assert.equal(typeof e.type, 'string');
  assert.ok('code' in e && 'param' in e);
  if (code !== undefined) assert.equal(e.code, code);
  if (param !== undefined) assert.equal(e.param, param);
}

test('missing, malformed and unknown keys get 401', async () => {
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', null, h.chatBody()), 401, 'missing_api_key');
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', 'tg-nope', h.chatBody()), 401, 'invalid_api_key');
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', null, h.chatBody(), { Authorization: 'Basic abc' }), 401);
  const m = await fetch(gw.url + '/v1/models');
  assert.equal(m.status, 401);
});

test('bad bodies get 400 naming the field, with one usage row each', async () => {
  const before = Number(h.psql(db, 'select count(*) from usage_events')[0][0]);
  const cases = [
    ['{"model": "chat", "messages": [', 'invalid_json', null],
    [JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }), 'invalid_value', 'model'],
    [JSON.stringify({ model: 42, messages: [] }), 'invalid_value', 'model'],
    [JSON.stringify({ model: 'chat' }), 'invalid_value', 'messages'],
    [JSON.stringify({ model: 'chat', messages: 'hi' }), 'invalid_value', 'messages'],
    [JSON.stringify({ model: 'chat', messages: [{ content: 'x' }] }), 'invalid_value', 'messages[0].role'],
    [JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 5 }] }), 'invalid_value', 'messages[0].content'],
    [JSON.stringify(h.chatBody({ stream: 'yes' })), 'invalid_value', 'stream'],
    [JSON.stringify(h.chatBody({ max_tokens: -3 })), 'invalid_value', 'max_tokens'],
    [JSON.stringify(h.chatBody({ max_tokens: 2.5 })), 'invalid_value', 'max_tokens'],
    [JSON.stringify(h.chatBody({ temperature: 'hot' })), 'invalid_value', 'temperature'],
    [JSON.stringify(h.chatBody({ stream_options: { include_usage: 1 } })), 'invalid_value', 'stream_options.include_usage'],
    ['[1, 2, 3]', 'invalid_value', null],
  ];
  for (const [body, code, param] of cases) {
    const r = await h.post(gw, '/v1/chat/completions', key, body);
    assertOpenAIError(r, 400, code, param);
  }
  const bad = Buffer.concat([Buffer.from('{"model":"chat","messages":[{"role":"user","content":"'),
    Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')]);
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', key, new Uint8Array(bad)), 400, 'invalid_utf8');
  const r = await h.post(gw, '/v1/completions', key, { model: 'chat' });
  assertOpenAIError(r, 400, 'invalid_value', 'prompt');
  const n = cases.length + 2;
  const rows = await h.waitForRows(db, before + n);
  const errs = rows.slice(before);
  assert.ok(errs.every((x) => x.http_status === 400 && x.usage_complete && Number(x.prompt_tokens) === 0 && x.provider === null));
  const simStats = await sim.stats();
  assert.equal(simStats.requests.by_endpoint.chat_completions + simStats.requests.by_endpoint.completions, 0, "nothing was forwarded");
});

test('unknown model 404, model not allowed for the key 403', async () => {
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'gpt-9' })), 404, 'model_not_found', 'model');
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'secret' })), 403, 'model_not_allowed', 'model');
});

test('body too large is 413; wrong method 405; unknown URL 404', async () => {
  const big = JSON.stringify(h.chatBody({ messages: [{ role: 'user', content: 'x'.repeat(70000) }] }));
  assertOpenAIError(await h.post(gw, '/v1/chat/completions', key, big), 413, 'request_too_large');
  const huge = 'x'.repeat(200000);
  const r = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: huge });
  assert.equal(r.status, 413);
  const g = await fetch(gw.url + '/v1/chat/completions', { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(g.status, 405);
  const u = await fetch(gw.url + '/v2/whatever');
  assert.equal(u.status, 404);
  assert.equal((await u.json()).error.code, 'unknown_url');
});

// Raw socket helpers for what fetch cannot send.
function rawRequest(bytes, { waitMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(gw.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('error', () => {});
    s.on('close', () => resolve(out));
    s.write(bytes);
    setTimeout(() => s.destroy(), waitMs);
  });
}

test('malformed HTTP and oversized headers are refused; the gateway lives on', async () => {
  const garbage = await rawRequest('THIS IS NOT HTTP\r\n\r\n');
  assert.match(garbage, /^HTTP\/1\.[01] 400/);
  const bigHeader = await rawRequest(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
  assert.ok(bigHeader === '' || /^HTTP\/1\.[01] (400|413|431)/.test(bigHeader), bigHeader.slice(0, 80));
  const ok = await fetch(gw.url + '/healthz');
  assert.equal(ok.status, 200);
});

test('a client that sends slowly or stops mid-body is timed out without harm', async () => {
  const started = Date.now();
  const partial = await rawRequest(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
    'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model":', { waitMs: 4000 });
  assert.ok(Date.now() - started < 4000, 'the gateway closed the stalled connection itself');
  assert.doesNotMatch(partial, /^HTTP\/1\.1 200/);
  const ok = await h.post(gw, '/v1/chat/completions', key, h.chatBody());
  assert.equal(ok.status, 200);
});
