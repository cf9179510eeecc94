// Failover: a connect error, timeout, 429 or 5xx (or garbage) before the first
// byte reached the client moves the request to the next provider; once bytes
// reached the client a broken stream cannot be retried and is recorded as
// incomplete, never silently zero.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'gamma');
const good = await h.startSim('--name', 'good', '--completion-tokens', '4');

// a port where nothing listens
const deadPort = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });

const faults = ['429', '500', '503', 'reset', 'stall', 'garbage'];
const bad = {};
for (const f of faults) bad[f] = await h.startSim('--name', `bad-${f}`, '--fault', f);
const cut = await h.startSim('--name', 'cut', '--fault', 'cut', '--completion-tokens', '20', '--tokens-per-s', '200');
const noUsage = await h.startSim('--name', 'nousage', '--fault', 'no-usage');

// a multicast address: the connect fails inside evhttp_make_request itself
// (ENETUNREACH at once), not later from the event loop
const providers = [{ name: 'good', url: good.url }, { name: 'dead', url: `http://127.0.0.1:${deadPort}` },
  { name: 'unroutable', url: 'http://224.0.0.1:9' },
  { name: 'cut', url: cut.url }, { name: 'nousage', url: noUsage.url }];
const models = { 'via-dead': [['dead'], ['good']], 'only-dead': [['dead']], 'via-unroutable': [['unroutable'], ['good']], 'only-unroutable': [['unroutable']], cut: [['cut'], ['good']], nousage: [['nousage']],
  'only-429': [['bad-429']], 'only-503': [['bad-503']], 'only-stall': [['bad-stall']] };
for (const f of faults) {
  providers.push({ name: `bad-${f}`, url: bad[f].url, firstByteMs: 700, idleMs: 700 });
  models[`via-${f}`] = [[`bad-${f}`], ['good']];
}
const gw = await h.startGateway(h.gatewayConfig({ conninfo: db, providers, models }));

for (const via of ['dead', 'unroutable', ...faults]) {
  for (const stream of [false, true]) {
    test(`failover from ${via} (stream ${stream})`, async () => {
      const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: `via-${via}`, stream }));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-tollgate-provider'), 'good');
      assert.equal(r.headers.get('x-tollgate-attempts'), '2');
      if (stream) assert.equal(h.sseEvents(r.text).at(-1), '[DONE]');
      const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
      assert.equal(row.provider, 'good');
      assert.equal(row.attempts, 2);
      assert.equal(row.usage_complete, true);
      assert.equal(Number(row.completion_tokens), 4);
    });
  }
}

test('no provider reachable: 502, 429 passed on, 503, 504', async () => {
  const cases = [['only-dead', 502, 'upstream_unavailable'], ['only-unroutable', 502, 'upstream_unavailable'], ['only-429', 429, 'upstream_rate_limited'],
    ['only-503', 503, 'upstream_overloaded'], ['only-stall', 504, 'upstream_timeout']];
  for (const [model, status, code] of cases) {
    const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model }));
    assert.equal(r.status, status, `${model}: ${r.text}`);
    assert.equal(r.json.error.code, code);
    if (status === 429) assert.ok(r.headers.get('retry-after'), 'Retry-After passed on');
    const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
    assert.equal(row.http_status, status);
    assert.equal(row.attempts, 1);
  }
});

test('a stream cut after bytes reached the client is not retried and is marked incomplete', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'cut', stream: true }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-provider'), 'cut');
  assert.notEqual(h.sseEvents(r.text.replace(/\n\n[^\n]*$/, '\n\n')).at(-1), '[DONE]');
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.attempts, 1);
  assert.equal(row.usage_complete, false);
  assert.equal(row.provider, 'cut');
});

test('a provider that never sends usage: answered, row marked incomplete', async () => {
  for (const stream of [false, true]) {
    const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'nousage', stream }));
    assert.equal(r.status, 200);
    const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
    assert.equal(row.usage_complete, false);
    assert.equal(row.completion_tokens, null, 'unknown, not zero');
  }
});
