// The budget and rate-limit admin API on the admin listener
// (docs/governance.md "Admin HTTP API"): create, replace, read and delete
// budgets and limits per team and per key, each write audited (actor, before,
// after); every kind of bad input refused with a clear OpenAI-shaped error and
// nothing saved; a change reaches the running gateway (its next reload); a
// team's spend, holds and remaining budget read live from Redis and from the
// ledger; the soft-threshold alert counted once on /metrics.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const ADMIN_TOKEN = 'budget-admin-token';
const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const ns = 'ga' + randomBytes(4).toString('hex');
const sim = await h.startSim('--completion-tokens', '16');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
  models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']] },
  gateway: `redis = ${process.env.TG_REDIS_URL}\ngovernance = on\nredis_namespace = ${ns}\n`,
}).replace('admin_token = none', 'admin_token = env:TG_TEST_ADMIN_TOKEN'), { TG_TEST_ADMIN_TOKEN: ADMIN_TOKEN });

const alphaKey = h.createKey(db, 'alpha');
const alphaPrefix = alphaKey.slice(0, 11);
const betaKey = h.createKey(db, 'beta');
const gammaKey = h.createKey(db, 'gamma');

async function admin(method, path, body, headers = {}) {
  const res = await fetch(gw.adminUrl + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}
const put = (path, body, actor = 'alice') => admin('PUT', path, body, actor ? { 'x-tollgate-actor': actor } : {});
const del = (path, actor = 'alice') => admin('DELETE', path, undefined, actor ? { 'x-tollgate-actor': actor } : {});
const get = (path) => admin('GET', path);

const auditCount = () => Number(h.psql(db, 'select count(*) from audit_log')[0][0]);
const lastAudit = () => JSON.parse(h.psql(db, `select row_to_json(a) from audit_log a order by id desc limit 1`)[0][0]);

// An OpenAI-shaped error with the expected status; returns the error object.
function refused(r, status, re, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
  assert.ok('type' in r.json.error && 'code' in r.json.error && 'param' in r.json.error, r.text);
  if (re) assert.match(r.json.error.message, re);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
  return r.json.error;
}

test('the admin token is enforced on the budget and limit API', async () => {
  for (const [method, path] of [['GET', '/budgets'], ['GET', '/limits/alpha'], ['PUT', '/budgets/alpha'],
    ['DELETE', '/limits/alpha'], ['GET', '/budgets/alpha/spend']]) {
    const none = await fetch(gw.adminUrl + path, { method });
    assert.equal(none.status, 401, `${method} ${path}`);
    const wrong = await fetch(gw.adminUrl + path, { method, headers: { Authorization: 'Bearer nope', 'x-tollgate-actor': 'x' },
      body: method === 'PUT' ? '{"hard":"1"}' : undefined });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error.code, 'invalid_admin_token');
  }
  assert.equal(Number(h.psql(db, 'select count(*) from budgets')[0][0]), 0);
});

test('a team budget: created, read, replaced and deleted, each write audited', async () => {
  const before = auditCount();
  let r = await put('/budgets/alpha', { hard: '500', soft: '400.5', currency: 'USD', period: 'month',
    zone: 'Europe/Paris', policy: 'downgrade', downgrades: 'deepseek-reasoner=deepseek-chat',
    webhook: 'http://alerts.internal:9000/tollgate' });
  assert.equal(r.status, 201, r.text);
  const b = r.json.budget;
  assert.equal(b.team, 'alpha');
  assert.equal(b.key, null);
  assert.equal(b.hard, '500');
  assert.equal(b.hard_micro, '500000000');
  assert.equal(b.soft, '400.5');
  assert.equal(b.soft_micro, '400500000');
  assert.equal(b.zone, 'Europe/Paris');
  assert.equal(b.policy, 'downgrade');
  assert.equal(b.webhook, 'http://alerts.internal:9000/tollgate');
  assert.equal(b.updated_by, 'alice');
  assert.equal(auditCount(), before + 1);
  let a = lastAudit();
  assert.equal(a.actor, 'alice');
  assert.equal(a.action, 'insert');
  assert.equal(a.object, `budgets/${b.id}`);
  assert.equal(a.before, null);
  assert.equal(a.after.hard_micro, 500000000);

  r = await get('/budgets/alpha');
  assert.equal(r.status, 200);
  assert.equal(r.json.budgets.length, 1);
  assert.deepEqual(r.json.budgets[0], b);
  r = await get('/budgets');
  assert.ok(r.json.budgets.some((x) => x.id === b.id));
  r = await get('/budgets?team=beta');
  assert.deepEqual(r.json.budgets, []);

  // replace: defaults for what is left out; the audit row has before and after
  r = await put('/budgets/alpha', { hard: '600' }, 'bob');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.budget.id, b.id);
  assert.equal(r.json.budget.hard, '600');
  assert.equal(r.json.budget.soft, null);
  assert.equal(r.json.budget.period, 'month');
  assert.equal(r.json.budget.zone, 'UTC');
  assert.equal(r.json.budget.policy, 'alert');
  a = lastAudit();
  assert.equal(a.actor, 'bob');
  assert.equal(a.action, 'update');
  assert.equal(a.before.hard_micro, 500000000);
  assert.equal(a.after.hard_micro, 600000000);
  assert.equal(a.before.soft_policy, 'downgrade');

  r = await del('/budgets/alpha', 'carol');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { deleted: true, object: 'budget', id: b.id });
  a = lastAudit();
  assert.equal(a.actor, 'carol');
  assert.equal(a.action, 'delete');
  assert.equal(a.before.hard_micro, 600000000);
  assert.equal(a.after, null);
  assert.equal(auditCount(), before + 3);
  assert.deepEqual((await get('/budgets/alpha')).json.budgets, []);
  refused(await del('/budgets/alpha'), 404, /no budget to delete/);
});

test('a key budget and key limits live beside the team ones', async () => {
  let r = await put(`/budgets/alpha/keys/${alphaPrefix}`, { hard: '20', period: 'day' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.budget.key, alphaPrefix);
  r = await get(`/budgets/alpha/keys/${alphaPrefix}`);
  assert.equal(r.status, 200);
  assert.equal(r.json.budget.hard, '20');
  r = await put(`/limits/alpha/keys/${alphaPrefix}`, { rpm: 60 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.limits.key, alphaPrefix);
  assert.equal(r.json.limits.rpm, 60);
  assert.equal(r.json.limits.tpm, null);
  const a = lastAudit();
  assert.equal(a.object, `rate_limits/${r.json.limits.id}`);
  assert.equal(a.actor, 'alice');
  r = await get('/budgets/alpha');
  assert.equal(r.json.budgets.length, 1);
  assert.equal(r.json.budgets[0].key, alphaPrefix);
  assert.equal((await del(`/budgets/alpha/keys/${alphaPrefix}`)).status, 200);
  assert.equal((await del(`/limits/alpha/keys/${alphaPrefix}`)).status, 200);
  refused(await get(`/budgets/alpha/keys/${alphaPrefix}`), 404, /has no budget of its own/);
  // a key of another team is not found under this team
  refused(await put(`/budgets/beta/keys/${alphaPrefix}`, { hard: '1' }), 404, /no key with the display prefix/);
});

test('rate limits: created, read, replaced and deleted, audited', async () => {
  const before = auditCount();
  let r = await put('/limits/beta', { rpm: 600, tpm: 2000000, concurrent: 20 });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual([r.json.limits.rpm, r.json.limits.tpm, r.json.limits.concurrent], [600, 2000000, 20]);
  r = await put('/limits/beta', { rpm: 10, tpm: null, concurrent: 0 }, 'dave');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.json.limits.rpm, r.json.limits.tpm, r.json.limits.concurrent], [10, null, null]);
  const a = lastAudit();
  assert.equal(a.actor, 'dave');
  assert.equal(a.before.requests_per_minute, 600);
  assert.equal(a.after.requests_per_minute, 10);
  r = await get('/limits/beta');
  assert.equal(r.json.limits.length, 1);
  assert.equal((await get('/limits')).json.limits.length, 1);
  assert.equal((await del('/limits/beta')).status, 200);
  assert.equal(auditCount(), before + 3);
  refused(await del('/limits/beta'), 404, /no rate limits to delete/);
});

test('bad input: each refused with a clear error, nothing saved', async () => {
  const before = auditCount();
  const cases = [
    [put('/budgets/nosuchteam', { hard: '5' }), 404, /no team named 'nosuchteam'/, null],
    [put('/limits/nosuchteam', { rpm: 5 }), 404, /no team named 'nosuchteam'/, null],
    [get('/budgets/nosuchteam'), 404, /no team named 'nosuchteam'/, null],
    [get('/budgets/nosuchteam/spend'), 404, /no team named/, null],
    [put('/budgets/alpha/keys/tg-zzzzzzzz', { hard: '5' }), 404, /no key with the display prefix 'tg-zzzzzzzz'/, null],
    [put('/budgets/alpha', { hard: '-5' }), 400, /negative/, 'hard'],
    [put('/budgets/alpha', { hard: '0' }), 400, /above zero/, 'hard'],
    [put('/budgets/alpha', { hard: 5 }), 400, /decimal string/, 'hard'],
    [put('/budgets/alpha', { hard: '1.0000001' }), 400, /at most 6 decimals/, 'hard'],
    [put('/budgets/alpha', { hard: '1e3' }), 400, /invalid amount/, 'hard'],
    [put('/budgets/alpha', { hard: '99999999999' }), 400, /invalid amount/, 'hard'],
    [put('/budgets/alpha', { soft: '5' }), 400, /'hard'.*required/, 'hard'],
    [put('/budgets/alpha', { hard: '5', soft: '6' }), 400, /not above the hard limit/, 'soft'],
    [put('/budgets/alpha', { hard: '5', soft: '-1' }), 400, /negative/, 'soft'],
    [put('/budgets/alpha', { hard: '5', period: 'week' }), 400, /"day", "month" or "total", not 'week'/, 'period'],
    [put('/budgets/alpha', { hard: '5', zone: 'Mars/Olympus' }), 400, /not a known IANA time zone/, 'zone'],
    [put('/budgets/alpha', { hard: '5', zone: '../../etc/passwd' }), 400, /not a known IANA time zone/, 'zone'],
    [put('/budgets/alpha', { hard: '5', currency: 'XXZ' }), 400, /currency/, 'currency'],
    [put('/budgets/alpha', { hard: '5', policy: 'panic' }), 400, /policy: must be/, 'policy'],
    [put('/budgets/alpha', { hard: '5', policy: 'downgrade' }), 400, /needs a mapping/, 'downgrades'],
    [put('/budgets/alpha', { hard: '5', downgrades: 'a=' }), 400, /FROM=TO/, 'downgrades'],
    [put('/budgets/alpha', { hard: '5', webhook: 'https://x/y' }), 400, /plain HTTP URL/, 'webhook'],
    [put('/budgets/alpha', { hard: '5', hrad: '6' }), 400, /Unknown field 'hrad'/, 'hrad'],
    [put('/budgets/alpha', '{"hard": "5",'), 400, /could not be parsed/, null],
    [put('/budgets/alpha', '[1,2]'), 400, /JSON object/, null],
    [put('/budgets/alpha', { hard: '5' }, null), 400, /x-tollgate-actor/, 'x-tollgate-actor'],
    [del('/budgets/alpha', null), 400, /x-tollgate-actor/, 'x-tollgate-actor'],
    [put('/limits/alpha', { rpm: -1 }), 400, /whole number from 0/, 'rpm'],
    [put('/limits/alpha', { tpm: 1.5 }), 400, /whole number from 0/, 'tpm'],
    [put('/limits/alpha', { concurrent: '3' }), 400, /whole number from 0/, 'concurrent'],
    [put('/limits/alpha', {}), 400, /at least one of rpm, tpm and concurrent/, 'rpm'],
    [put('/limits/alpha', { rpm: 0, tpm: null }), 400, /at least one/, 'rpm'],
    [put('/limits/alpha', { rps: 5 }), 400, /Unknown field 'rps'/, 'rps'],
    [put('/limits/alpha', 'not json'), 400, /could not be parsed/, null],
    [admin('POST', '/budgets/alpha', { hard: '5' }, { 'x-tollgate-actor': 'a' }), 405, /GET, PUT or DELETE/, null],
    [admin('PUT', '/budgets', { hard: '5' }, { 'x-tollgate-actor': 'a' }), 405, /Use GET/, null],
    [get('/budgets/alpha/nonsense'), 404, /Unknown admin URL/, null],
    [get('/budgets/bad%20name'), 404, /no team named/, null],
  ];
  for (const [p, status, re, param] of cases) {
    const r = await p;
    refused(r, status, re, param);
  }
  assert.equal(auditCount(), before, 'a refused write saved nothing');
  assert.equal(Number(h.psql(db, 'select count(*) from budgets')[0][0]), 0);
  assert.equal(Number(h.psql(db, 'select count(*) from rate_limits')[0][0]), 0);
});

test('changes reach the running gateway: a limit and a budget take effect, a delete lifts them', async () => {
  const body = h.chatBody({ model: 'deepseek-chat', max_tokens: 20 });
  assert.equal((await h.post(gw, '/v1/chat/completions', gammaKey, body)).status, 200);
  let r = await put('/limits/gamma', { rpm: 1 });
  assert.equal(r.status, 201, r.text);
  const t0 = Date.now();
  // the gateway's reload (0.5 s) brings the limit: at most one more request passes
  let refusedAt = null;
  for (let i = 0; i < 100 && refusedAt === null; i++) {
    const x = await h.post(gw, '/v1/chat/completions', gammaKey, body);
    if (x.status === 429) {
      assert.equal(x.json.error.code, 'rate_limit_exceeded');
      refusedAt = Date.now();
    } else {
      assert.equal(x.status, 200);
      await h.sleep(50);
    }
  }
  assert.ok(refusedAt !== null && refusedAt - t0 < 2000, `the limit applied within 2 s (${refusedAt - t0} ms)`);
  assert.equal((await del('/limits/gamma')).status, 200);
  await h.waitFor('the limit lifted', async () =>
    (await h.post(gw, '/v1/chat/completions', gammaKey, body)).status === 200, 3000, 100);

  // a budget too small for even one worst case refuses; deleted, it no longer does
  r = await put('/budgets/gamma', { hard: '0.000001', period: 'day' });
  assert.equal(r.status, 201, r.text);
  await h.waitFor('the budget applied', async () => {
    const x = await h.post(gw, '/v1/chat/completions', gammaKey, body);
    return x.status === 429 && x.json.error.code === 'insufficient_quota';
  }, 3000, 100);
  assert.equal((await del('/budgets/gamma')).status, 200);
  await h.waitFor('the budget lifted', async () =>
    (await h.post(gw, '/v1/chat/completions', gammaKey, body)).status === 200, 3000, 100);
});

test('a team\'s spend, holds and remaining budget: live from Redis, and the ledger beside it', async () => {
  let r = await put('/budgets/beta', { hard: '1', soft: '0.00001', period: 'day', zone: 'Asia/Shanghai' });
  assert.equal(r.status, 201, r.text);
  r = await get('/budgets/beta/spend');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.live, true, r.text);
  assert.equal(r.json.budgets.length, 1);
  let s = r.json.budgets[0];
  assert.equal(s.spent_micro, '0');
  assert.equal(s.remaining, '1');
  assert.match(s.period_id, /^d\d{4}-\d\d-\d\d$/);
  assert.equal(s.period_start.length > 0, true);

  await h.sleep(700); // the gateway's loader sees the budget
  const body = h.chatBody({ model: 'deepseek-chat', max_tokens: 20 });
  for (let i = 0; i < 3; i++) {
    const x = await h.post(gw, '/v1/chat/completions', betaKey, body);
    assert.equal(x.status, 200, x.text);
  }
  await h.waitForRows(db, 3, `team_id = (select id from teams where name = 'beta')`);
  // the settles are fire and forget: wait until the holds are gone
  s = await h.waitFor('settled spend', async () => {
    const x = (await get('/budgets/beta/spend')).json.budgets[0];
    return x.held_micro === '0' && x.spent_micro !== '0' ? x : null;
  }, 5000, 50);
  const ledgerMicro = BigInt(h.psql(db, `select ceil(sum(charge_pico) / 1000000)::bigint from usage_events
    where team_id = (select id from teams where name = 'beta')`)[0][0]);
  assert.equal(s.spent_source, 'redis');
  assert.equal(s.ledger_spent_micro, String(ledgerMicro));
  // Redis adds each request's charge rounded up: never below the ledger, at most 1 micro-unit per request above
  const spent = BigInt(s.spent_micro);
  assert.ok(spent >= ledgerMicro && spent <= ledgerMicro + 3n, `${spent} vs ${ledgerMicro}`);
  assert.equal(BigInt(s.remaining_micro), 1000000n - spent);

  // the soft threshold was crossed by the first request: one alert on /metrics, not three
  const m = await (await fetch(gw.adminUrl + '/metrics', { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  assert.match(m, /^tollgate_budget_alerts_total\{scope="team",policy="alert"\} 1$/m);
  assert.match(m, /^tollgate_budget_alerts_total\{scope="key",policy="alert"\} 0$/m);
  assert.match(m, /^# TYPE tollgate_budget_alerts_total counter$/m);
  assert.match(m, /^tollgate_budget_alert_webhooks_total\{outcome="failed"\} 0$/m);
});

test('spend with Redis unreachable: the ledger\'s figures, live false, and why', async () => {
  const lone = await h.startGateway(h.gatewayConfig({
    conninfo: db,
    providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
    models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']] },
    gateway: `redis = redis://127.0.0.1:1\ngovernance = on\nredis_timeout_ms = 200\n`,
  }).replace('admin_token = none', 'admin_token = env:TG_TEST_ADMIN_TOKEN'), { TG_TEST_ADMIN_TOKEN: ADMIN_TOKEN });
  const res = await fetch(lone.adminUrl + '/budgets/beta/spend', { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(res.status, 200);
  const j = await res.json();
  assert.equal(j.live, false);
  assert.match(j.message, /Redis at 127\.0\.0\.1:1/);
  const s = j.budgets[0];
  assert.equal(s.spent_source, 'ledger');
  assert.equal(s.held, null);
  assert.equal(s.spent_micro, s.ledger_spent_micro);
  assert.ok(BigInt(s.ledger_spent_micro) > 0n);
  // a team without a budget: an empty list, nothing to ask Redis
  const g = await (await fetch(lone.adminUrl + '/budgets/gamma/spend', { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
  assert.deepEqual(g.budgets, []);
  assert.equal(g.live, false);
});

test('shutdown: each worker closes its Redis connection, the budget loader stops, exit 0', async () => {
  // both workers have served governed requests by now (the earlier tests):
  // make sure of it with a few more
  const body = h.chatBody({ model: 'deepseek-chat', max_tokens: 20 });
  await Promise.all(Array.from({ length: 8 }, () => h.post(gw, '/v1/chat/completions', gammaKey, body)));
  const { code, sig } = await gw.stop('SIGTERM');
  assert.equal(code, 0, `exit ${code ?? sig}: ${gw.logs().slice(-2000)}`);
  const closed = gw.logs().match(/governance: worker \d+ closed its Redis connection/g) || [];
  assert.ok(closed.length >= 1 && closed.length <= 2, gw.logs().slice(-2000));
  assert.match(gw.logs(), /governance: budget loader stopped/);
  assert.ok(gw.logs().indexOf('budget loader stopped') > gw.logs().lastIndexOf('closed its Redis connection'));
});
