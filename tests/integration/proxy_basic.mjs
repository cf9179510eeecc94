// Non-streamed and streamed requests through a real gateway to a simulator:
// the answer relayed, the served-by headers, the usage row with the provider's
// token counts, /v1/models, /healthz and /metrics.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'alpha');
const limitedKey = h.createKey(db, 'alpha', '--models', 'other');
const sim = await h.startSim('--completion-tokens', '5', '--api-key', 'sk-upstream-secret');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'sim', url: sim.url, kind: 'deepseek', apiKey: 'env:TG_IT_SIM_KEY' }],
  models: { chat: [['sim', 'sim-chat-v1']], other: [['sim']] },
}), { TG_IT_SIM_KEY: 'sk-upstream-secret' });

test('non-streamed chat completion is relayed with usage and headers', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'chat.completion');
  assert.equal(r.json.model, 'sim-chat-v1', 'the provider saw its own model name');
  assert.ok(r.json.choices[0].message.content.length > 0);
  const u = r.json.usage;
  assert.equal(u.completion_tokens, 5);
  assert.equal(u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens, u.prompt_tokens);
  assert.equal(u.prompt_tokens_details.cached_tokens, u.prompt_cache_hit_tokens);
  assert.match(r.headers.get('x-request-id'), /^req_[0-9a-f]{24}$/);
  assert.equal(r.headers.get('x-tollgate-provider'), 'sim');
  assert.equal(r.headers.get('x-tollgate-upstream-model'), 'sim-chat-v1');
  const rows = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(rows.length, 1);
  const row = rows[0];
  assert.equal(row.http_status, 200);
  assert.equal(row.provider, 'sim');
  assert.equal(row.upstream_model, 'sim-chat-v1');
  assert.equal(row.model_requested, 'chat');
  assert.equal(row.endpoint, 'chat.completions');
  assert.equal(row.streamed, false);
  assert.equal(row.attempts, 1);
  assert.equal(Number(row.prompt_tokens), u.prompt_tokens);
  assert.equal(Number(row.completion_tokens), 5);
  assert.equal(Number(row.cache_hit_tokens), u.prompt_cache_hit_tokens);
  assert.equal(Number(row.cache_miss_tokens), u.prompt_cache_miss_tokens);
  assert.equal(row.usage_complete, true);
  assert.ok(row.first_byte_at && row.completed_at >= row.received_at);
});

test('streamed chat: events relayed, usage event hidden unless asked, row complete', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/event-stream/);
  const events = h.sseEvents(r.text);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1);
  assert.ok(chunks.length >= 5);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.choices.length > 0),
    'the client did not ask for usage: no usage-only event');
  const id = r.headers.get('x-request-id');
  const [row] = await h.waitForRows(db, 1, `request_id = '${id}'`);
  assert.equal(row.streamed, true);
  assert.equal(Number(row.completion_tokens), 5);
  assert.ok(Number(row.prompt_tokens) > 0);
  assert.equal(row.usage_complete, true);
});

test('streamed chat with include_usage gets the usage event, both dialects', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key,
    h.chatBody({ stream: true, stream_options: { include_usage: true } }));
  const events = h.sseEvents(r.text);
  const last = events.at(-2);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 5);
  assert.equal(last.usage.prompt_tokens_details.cached_tokens, last.usage.prompt_cache_hit_tokens);
});

test('completions endpoint, streamed and not', async () => {
  const r = await h.post(gw, '/v1/completions', key, { model: 'chat', prompt: 'Once upon a time' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'text_completion');
  const s = await h.post(gw, '/v1/completions', key, { model: 'chat', prompt: 'Once', stream: true });
  assert.equal(h.sseEvents(s.text).at(-1), '[DONE]');
  const rows = await h.waitForRows(db, 2, `endpoint = 'completions'`);
  assert.ok(rows.every((x) => x.usage_complete && x.http_status === 200));
});

test('GET /v1/models lists what the key may use', async () => {
  const all = await (await fetch(gw.url + '/v1/models', { headers: { Authorization: `Bearer ${key}` } })).json();
  assert.deepEqual(all.data.map((m) => m.id).sort(), ['chat', 'other']);
  const some = await (await fetch(gw.url + '/v1/models', { headers: { Authorization: `Bearer ${limitedKey}` } })).json();
  assert.deepEqual(some.data.map((m) => m.id), ['other']);
});

test('prefix cache hits reported by the provider reach the row', async () => {
  const long = 'The quarterly report covers revenue, costs and forecasts. '.repeat(40);
  const body = h.chatBody({ messages: [{ role: 'system', content: long }, { role: 'user', content: 'Summarise.' }] });
  await h.post(gw, '/v1/chat/completions', key, body);
  const r = await h.post(gw, '/v1/chat/completions', key, body);
  assert.ok(r.json.usage.prompt_cache_hit_tokens >= 64, JSON.stringify(r.json.usage));
  assert.equal(r.json.usage.prompt_cache_hit_tokens % 64, 0);
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(Number(row.cache_hit_tokens), r.json.usage.prompt_cache_hit_tokens);
});

test('health and metrics', async () => {
  const hz = await fetch(gw.url + '/healthz');
  assert.equal(hz.status, 200);
  const m = await (await fetch(gw.adminUrl + '/metrics')).text();
  assert.match(m, /tollgate_requests_total\{model="chat",provider="sim",status="200"\} \d+/);
  assert.match(m, /tollgate_request_duration_seconds_bucket\{le="\+Inf"\} \d+/);
  assert.match(m, /tollgate_usage_rows_pending \d+/);
  assert.match(m, /tollgate_upstream_connections\{provider="sim"\} \d+/);
});

test('every answered request has exactly one row', async () => {
  const before = Number(h.psql(db, 'select count(*) from usage_events')[0][0]);
  const N = 40;
  const rs = await Promise.all(Array.from({ length: N }, (_, i) =>
    h.post(gw, '/v1/chat/completions', key, h.chatBody({ stream: i % 2 === 0 }))));
  assert.ok(rs.every((r) => r.status === 200));
  await h.waitForRows(db, before + N);
  await h.sleep(200);
  const ids = rs.map((r) => `'${r.headers.get('x-request-id')}'`).join(',');
  const counts = h.psql(db, `select count(*), count(distinct request_id) from usage_events where request_id in (${ids})`)[0];
  assert.deepEqual(counts.map(Number), [N, N]);
});

// A raw GET with the Host header of our choosing (fetch sets its own).
function rawGet(port, host, path) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    sock.on('data', (d) => { out += d; });
    sock.on('end', () => resolve({ status: Number(out.split(' ')[1]), text: out }));
    sock.on('error', reject);
    sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

test('without an admin_token the admin API takes only requests addressed to a loopback host', async () => {
  for (const host of [`127.0.0.1:${gw.adminPort}`, `localhost:${gw.adminPort}`, `[::1]:${gw.adminPort}`, 'localhost'])
    assert.equal((await rawGet(gw.adminPort, host, '/metrics')).status, 200, host);
  // a web page reaching the listener through DNS rebinding carries its own host name
  for (const host of [`evil.example:${gw.adminPort}`, `127.0.0.1.evil.example:${gw.adminPort}`, '127.evil.example',
    `[::2]:${gw.adminPort}`, '127.0.0.1:80x']) {
    const r = await rawGet(gw.adminPort, host, '/metrics');
    assert.equal(r.status, 403, host);
    assert.match(r.text, /"code":"admin_host_not_loopback"/);
  }
  // health checks answer whatever the host
  assert.equal((await rawGet(gw.adminPort, 'lb.internal', '/healthz')).status, 200);
});
