// Lifecycle: key revocation reaching a running gateway within a second, a
// client that disappears mid-stream or before its answer started, graceful shutdown with a stream in
// flight, PostgreSQL unreachable at start and during the run.
// Runs alone (is_parallel: false): it stops and restarts the shared PostgreSQL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'delta');
const slow = await h.startSim('--completion-tokens', '30', '--tokens-per-s', '20');
const conf = (conninfo, extra = '') => h.gatewayConfig({ conninfo, providers: [{ name: 'slow', url: slow.url, idleMs: 5000 }],
  models: { chat: [['slow']] }, gateway: extra });
const gw = await h.startGateway(conf(db));

test('a revoked key is refused by the running gateway within one second', async () => {
  const victim = h.createKey(db, 'delta');
  await h.waitFor('new key accepted', async () =>
    (await h.post(gw, '/v1/chat/completions', victim, h.chatBody({ max_tokens: 1 }))).status === 200, 3000);
  const prefix = h.psql(db, `select display_prefix from api_keys order by id desc limit 1`)[0][0];
  const t0 = Date.now();
  h.ctl(db, 'key', 'revoke', prefix);
  await h.waitFor('revocation', async () => {
    const r = await h.post(gw, '/v1/chat/completions', victim, h.chatBody({ max_tokens: 1 }));
    return r.status === 401 && r.json.error.code === 'key_revoked';
  }, 1000, 20);
  assert.ok(Date.now() - t0 <= 1000, `took ${Date.now() - t0} ms`);
});

test('client gone mid-stream: upstream cancelled, row incomplete with status 499', async () => {
  const ctrl = new AbortController();
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', signal: ctrl.signal,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(h.chatBody({ stream: true })),
  });
  const id = res.headers.get('x-request-id');
  const reader = res.body.getReader();
  await reader.read();
  ctrl.abort();
  const [row] = await h.waitForRows(db, 1, `request_id = '${id}'`, 5000);
  assert.equal(row.http_status, 499);
  assert.equal(row.usage_complete, false);
  assert.equal(row.error_type, 'client_closed');
  assert.equal(row.streamed, true);
  const m = await (await fetch(gw.adminUrl + '/metrics')).text();
  assert.match(m, /tollgate_requests_in_flight 0/);
});

test('client gone before its answer started: noticed at once, upstream cancelled, row 499', async () => {
  // the simulator takes 1.5 s (30 tokens at 20/s) to answer a whole body
  const ctrl = new AbortController();
  const user = `gone-early-${Date.now()}`;
  const p = fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', signal: ctrl.signal,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(h.chatBody({ user })),
  }).catch((e) => e);
  await h.sleep(200);
  ctrl.abort();
  assert.equal((await p).name, 'AbortError');
  const rows = await h.waitForRows(db, 1, `http_status = 499 and streamed = false`, 5000);
  const row = rows.at(-1);
  assert.equal(row.error_type, 'client_closed');
  assert.equal(row.attempts, 1);
  assert.equal(row.usage_complete, false);
  const ms = (Date.parse(row.completed_at) - Date.parse(row.received_at));
  assert.ok(ms < 1200, `ended ${ms} ms after it was received: before the provider's answer (1.5 s)`);
  await h.waitFor('the gateway logged it', async () => gw.logs().includes(`request ${row.request_id}: client went away`));
  const m = await (await fetch(gw.adminUrl + '/metrics')).text();
  assert.match(m, /tollgate_requests_in_flight 0/);
});

test('PostgreSQL down mid-run: requests still served, rows written when it returns', async () => {
  const services = process.env.TG_SERVICES_DIR;
  const script = `${process.env.TG_SOURCE_ROOT}/scripts/services`;
  const before = Number(h.psql(db, 'select count(*) from usage_events')[0][0]);
  execFileSync(script, ['pg-stop', services]);
  let ids = [];
  try {
    for (let i = 0; i < 5; i++) {
      const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ max_tokens: 2 }));
      assert.equal(r.status, 200, 'keys are in memory: serving goes on');
      ids.push(r.headers.get('x-request-id'));
    }
    const m = await (await fetch(gw.adminUrl + '/metrics')).text();
    assert.match(m, /tollgate_usage_rows_pending [1-9]/);
  } finally {
    execFileSync(script, ['pg-start', services]);
  }
  const rows = await h.waitForRows(db, 5, `request_id in (${ids.map((i) => `'${i}'`).join(',')})`, 20000);
  assert.equal(rows.length, 5);
  assert.equal(Number(h.psql(db, 'select count(*) from usage_events')[0][0]), before + 5);
});

test('PostgreSQL unreachable at start: 503 with a clear error, no crash', async () => {
  const deadPort = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
  const gw2 = await h.startGateway(conf(`host=127.0.0.1 port=${deadPort} dbname=x user=tollgate connect_timeout=1`));
  const r = await h.post(gw2, '/v1/chat/completions', 'tg-anything', h.chatBody());
  assert.equal(r.status, 503);
  assert.equal(r.json.error.code, 'key_store_unavailable');
  assert.equal((await fetch(gw2.url + '/healthz')).status, 200);
  assert.match(gw2.logs(), /PostgreSQL|connect/i);
  const exit = await gw2.stop('SIGTERM');
  assert.equal(exit.code, 0);
});

test('graceful shutdown: stop accepting, finish the stream in flight, write its row', async () => {
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(h.chatBody({ stream: true })),
  });
  const id = res.headers.get('x-request-id');
  const textPromise = res.text();
  await h.sleep(200);
  gw.proc.kill('SIGTERM');
  await h.sleep(200);
  await assert.rejects(fetch(gw.url + '/healthz'), 'no longer accepting');
  const text = await textPromise;
  assert.equal(h.sseEvents(text).at(-1), '[DONE]', 'the stream in flight finished');
  const exit = await gw.exited;
  assert.equal(exit.code, 0, gw.logs());
  const [row] = await h.waitForRows(db, 1, `request_id = '${id}'`);
  assert.equal(row.http_status, 200);
  assert.equal(row.usage_complete, true);
});
