// The price administration API on the admin listener (docs/prices-admin.md):
// list, history and preview against the real PostgreSQL after `tollgatectl
// price seed`; card and window writes through the same validated, audited
// transaction as tollgatectl (bad input refused with the right status and
// nothing saved); quotes of gateway models from the live price book; and a
// card added over HTTP charging the next request within a second.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const ADMIN_TOKEN = 'sekrit-admin-token';
const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const key = h.createKey(db, 'finance');
const sim = await h.startSim('--completion-tokens', '7');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }, { name: 'unpriced', url: sim.url }],
  models: {
    'deepseek-chat': [['deepseek', 'deepseek-chat']],
    mixed: [['deepseek', 'deepseek-reasoner'], ['unpriced', 'whatever']],
    apimodel: [['deepseek', 'api-model']],
  },
}).replace('admin_token = none', 'admin_token = env:TG_TEST_ADMIN_TOKEN'), { TG_TEST_ADMIN_TOKEN: ADMIN_TOKEN });

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
const get = (path) => admin('GET', path);
const write = (path, body, actor = 'alice') => admin('POST', path, body, actor ? { 'x-tollgate-actor': actor } : {});

const counts = () => h.psql(db, `select (select count(*) from price_cards), (select count(*) from discount_windows),
  (select count(*) from audit_log)`)[0].map(Number);

// An OpenAI-shaped error with the expected status; returns its message.
function refused(r, status, re) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
  assert.ok('type' in r.json.error && 'code' in r.json.error && 'param' in r.json.error, r.text);
  if (re) assert.match(r.json.error.message, re);
  return r.json.error.message;
}

test('the admin token is enforced on the price API', async () => {
  for (const path of ['/prices', '/quote?model=deepseek-chat&prompt_tokens=1&max_tokens=1']) {
    const none = await fetch(gw.adminUrl + path);
    assert.equal(none.status, 401);
    const wrong = await fetch(gw.adminUrl + path, { headers: { Authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error.code, 'invalid_admin_token');
  }
  const before = counts();
  const r = await fetch(gw.adminUrl + '/prices/cards', { method: 'POST', headers: { 'x-tollgate-actor': 'eve' },
    body: JSON.stringify({ provider: 'p', model: 'm', currency: 'USD', hit: '1', miss: '1', output: '1', from: '2030-01-01' }) });
  assert.equal(r.status, 401);
  assert.deepEqual(counts(), before);
});

test('the brief\'s worked examples through /prices/preview', async () => {
  const day = '2025-03-01T12:00:00Z', night = '2025-03-01T17:00:00Z';
  const cases = [
    ['deepseek', 'deepseek-chat', day, '1.29', 'USD', '1.29'],
    ['deepseek-cny', 'deepseek-chat', day, '9.4', 'CNY', '9.40'],
    ['deepseek', 'deepseek-reasoner', day, '2.576', 'USD', '2.58'],
    ['deepseek-cny', 'deepseek-reasoner', day, '18.8', 'CNY', '18.80'],
    ['deepseek', 'deepseek-chat', night, '0.645', 'USD', '0.64'],
    ['deepseek-cny', 'deepseek-chat', night, '4.7', 'CNY', '4.70'],
  ];
  for (const [provider, model, at, total, currency, rounded] of cases) {
    const r = await get(`/prices/preview?provider=${provider}&model=${model}&at=${at}&hit=400000&miss=600000&output=1000000`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, total, `${provider}/${model} at ${at}`);
    assert.equal(r.json.total_pico, (BigInt(total.replace('.', '') + '0'.repeat(12 - (total.split('.')[1] || '').length))).toString());
    assert.equal(r.json.currency, currency);
    assert.equal(r.json.rounded, rounded);
    assert.equal(r.json.card.provider, provider);
    assert.equal(r.json.decided_at, at);
    const sum = r.json.components.reduce((s, c) => s + BigInt(c.cost_pico), 0n);
    assert.equal(sum.toString(), r.json.total_pico, 'components add up to the total exactly');
    if (at === night) assert.equal(r.json.window.kind, 'daily');
    else assert.equal(r.json.window, null);
  }
  const miss = await get('/prices/preview?provider=deepseek&model=deepseek-chat&at=2025-03-01T12:00:00Z&hit=400000&miss=600000&output=1000000');
  const c = Object.fromEntries(miss.json.components.map((x) => [x.class, x]));
  assert.equal(c.cache_hit.price, '0.07');
  assert.equal(c.cache_hit.cost, '0.028');
  assert.equal(c.cache_miss.tokens, 600000);
  refused(await get('/prices/preview?provider=deepseek&model=deepseek-chat&at=2020-01-01&hit=1&miss=1&output=1'), 404, /no price card|before/);
  refused(await get('/prices/preview?provider=deepseek&model=deepseek-chat&at=2025-03-01&hit=-1&miss=1&output=1'), 400, /hit/);
  refused(await get('/prices/preview?provider=deepseek&model=deepseek-chat&hit=1&miss=1&output=1'), 400, /'at' is required/);
});

test('list and history', async () => {
  const r = await get('/prices?at=2025-03-01T00:00:00Z');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.at, '2025-03-01T00:00:00Z');
  const chat = r.json.cards.find((c) => c.provider === 'deepseek' && c.model === 'deepseek-chat');
  assert.deepEqual([chat.hit, chat.miss, chat.output, chat.currency], ['0.07', '0.27', '1.1', 'USD']);
  assert.equal(chat.effective_from, '2025-02-08T16:00:00Z');
  assert.equal(chat.effective_until, '2025-09-05T16:00:00Z');
  const one = await get('/prices?provider=deepseek&model=deepseek-chat&at=2025-10-01');
  assert.equal(one.json.cards.length, 1);
  assert.equal(one.json.cards[0].hit, '0.028');
  const hist = await get('/prices/history?provider=deepseek&model=deepseek-chat');
  assert.equal(hist.status, 200, hist.text);
  const froms = hist.json.cards.map((c) => Date.parse(c.effective_from));
  assert.deepEqual(froms, [...froms].sort((a, b) => a - b), 'cards in time order');
  assert.ok(hist.json.cards.length >= 3);
  const daily = hist.json.windows.find((w) => w.kind === 'daily');
  assert.equal(daily.zone, 'UTC');
  assert.equal(daily.start, '16:30:00');
  assert.equal(daily.end, '00:30:00');
  assert.equal(daily.percent_off, '50.00');
  assert.ok(hist.json.windows.some((w) => w.kind === 'once'));
  refused(await get('/prices/history?provider=nobody&model=none'), 404, /No price card for nobody\/none/);
  refused(await get('/prices/history?provider=deepseek'), 400, /'model' is required/);
  refused(await get('/prices?at=yesterday'), 400, /invalid date 'yesterday'/);
});

test('add a card and windows, end a window; each write audited with the actor', async () => {
  const c = await write('/prices/cards', { provider: 'acme', model: 'm1', currency: 'EUR', hit: '0.1', miss: '0.25',
    output: '2', from: '2026-01-01T00:00:00Z', note: 'launch' }, 'alice');
  assert.equal(c.status, 201, c.text);
  const id = c.json.card.id;
  assert.deepEqual([c.json.card.hit, c.json.card.miss, c.json.card.output, c.json.card.reasoning], ['0.1', '0.25', '2', null]);
  const [audit] = h.psql(db, `select actor, action from audit_log where object = 'price_cards/${id}'`);
  assert.deepEqual(audit, ['alice', 'insert']);

  const w = await write('/prices/windows', { card: id, kind: 'daily', zone: 'Europe/Paris', start: '22:00', end: '06:00',
    weekdays: 'mon,tue,wed,thu,fri', precedence: 10, percent_off: '50' }, 'bob');
  assert.equal(w.status, 201, w.text);
  assert.deepEqual([w.json.window.hit, w.json.window.miss, w.json.window.output], ['0.05', '0.125', '1']);
  const o = await write('/prices/windows', { card: id, kind: 'once', from: '2026-03-02T04:00:00Z', until: '2026-03-03',
    precedence: 20, hit: '0', miss: '0.01', output: '0.02' }, 'bob');
  assert.equal(o.status, 201, o.text);
  // Monday 2026-03-02 05:00 Paris is inside both: the higher precedence (once) wins
  const p = await get(`/prices/preview?provider=acme&model=m1&at=2026-03-02T04:30:00Z&hit=0&miss=1000000&output=0`);
  assert.equal(p.json.window.id, o.json.window.id);
  assert.equal(p.json.total, '0.01');
  const e = await write(`/prices/windows/${o.json.window.id}/end`, { at: '2026-03-02T12:00:00Z' }, 'carol');
  assert.equal(e.status, 200, e.text);
  assert.equal(e.json.window.valid_until, '2026-03-02T12:00:00Z');
  const hist = await get('/prices/history?provider=acme&model=m1');
  assert.equal(hist.json.windows.find((x) => x.id === o.json.window.id).valid_until, '2026-03-02T12:00:00Z');
  assert.equal(hist.json.windows.find((x) => x.id === w.json.window.id).weekdays, 'mon,tue,wed,thu,fri');
  const actors = h.psql(db, `select actor from audit_log where object = 'discount_windows/${o.json.window.id}' order by id`).map((r) => r[0]);
  assert.deepEqual(actors, ['bob', 'carol']);
});

test('bad writes are refused with the right status and nothing is saved', async () => {
  const card = { provider: 'bad', model: 'm', currency: 'USD', hit: '0.1', miss: '0.2', output: '0.3', from: '2026-01-01' };
  const base = await write('/prices/cards', card);
  assert.equal(base.status, 201, base.text);
  const id = base.json.card.id;
  const w0 = await write('/prices/windows', { card: id, kind: 'daily', zone: 'UTC', start: '16:30', end: '00:30', precedence: 5, percent_off: '50' });
  assert.equal(w0.status, 201, w0.text);
  const before = counts();
  const cases = [
    [() => write('/prices/cards', card, null), 400, /x-tollgate-actor/],
    [() => write('/prices/cards', { ...card, hit: '-1' }), 400, /invalid hit '-1'/],
    [() => write('/prices/cards', { ...card, miss: 0.27 }), 400, /decimal string/],
    [() => write('/prices/cards', { ...card, output: '1000000.000001' }), 400, /invalid output/],
    [() => write('/prices/cards', { ...card, currency: 'XYZ' }), 400, /unknown currency/],
    [() => write('/prices/cards', { ...card, from: '2026-01-01T10:00:00' }), 400, /invalid date/],
    [() => write('/prices/cards', { ...card, model: undefined }), 400, /'model' is required/],
    [() => write('/prices/cards', card), 409, /already exists/],
    [() => write('/prices/cards', '{"provider": "x",'), 400, /JSON/],
    [() => write('/prices/cards', '[1,2]'), 400, /JSON object/],
    [() => write('/prices/windows', { card: id, kind: 'daily', zone: 'Mars/Olympus', start: '01:00', end: '02:00', precedence: 1, percent_off: '10' }), 400, /unknown time zone 'Mars\/Olympus'/],
    [() => write('/prices/windows', { card: id, kind: 'daily', zone: 'UTC', start: '00:00', end: '01:00', precedence: 5, percent_off: '10' }), 409, /can overlap with the same precedence 5/],
    [() => write('/prices/windows', { card: id, kind: 'once', from: '2026-05-02', until: '2026-05-01', precedence: 1, percent_off: '10' }), 400, /must be after/],
    [() => write('/prices/windows', { card: id, kind: 'daily', zone: 'UTC', start: '25:00', end: '02:00', precedence: 1, percent_off: '10' }), 400, /invalid start '25:00'/],
    [() => write('/prices/windows', { card: id, kind: 'daily', zone: 'UTC', start: '01:00', end: '02:00', precedence: 1, percent_off: '150' }), 400, /invalid percent_off '150'/],
    [() => write('/prices/windows', { card: id, kind: 'daily', zone: 'UTC', start: '01:00', end: '02:00', precedence: 1, percent_off: '10', hit: '0' }), 400, /not both/],
    [() => write('/prices/windows', { card: id, kind: 'weekly', precedence: 1, percent_off: '10' }), 400, /kind/],
    [() => write('/prices/windows', { card: 999999, kind: 'once', from: '2026-05-01', until: '2026-05-02', precedence: 1, percent_off: '10' }), 404, /no price card with id 999999/],
    [() => write(`/prices/windows/${w0.json.window.id}/end`, { at: '2025-01-01' }), 400, /not after the window's start/],
    [() => write('/prices/windows/999999/end', { at: '2027-01-01' }), 404, /no window with id 999999/],
    [() => write(`/prices/windows/${w0.json.window.id}/end`, {}, null), 400, /x-tollgate-actor/],
    [() => admin('GET', '/prices/cards'), 405, /POST/],
  ];
  for (const [fn, status, re] of cases) {
    refused(await fn(), status, re);
    assert.deepEqual(counts(), before, `nothing saved after ${re}`);
  }
});

test('quote a gateway model from the live book: routes, unpriced routes, GET and POST', async () => {
  const r = await get('/quote?model=mixed&prompt_tokens=1000&max_tokens=500&at=2025-03-01T12:00:00Z');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.routes.length, 1);
  const route = r.json.routes[0];
  assert.equal(route.provider, 'deepseek');
  assert.equal(route.upstream_model, 'deepseek-reasoner');
  // 1000 at miss 0.55 + 500 at output 2.19 per 1M
  assert.equal(route.total, '0.001645');
  assert.equal(route.total_pico, '1645000000');
  assert.equal(route.currency, 'USD');
  assert.deepEqual(r.json.unpriced.map((u) => [u.provider, u.upstream_model]), [['unpriced', 'whatever']]);
  assert.match(r.json.unpriced[0].message, /no price card/);
  // inside the off-peak window the card's dearer prices still bound the cost
  const night = await get('/quote?model=deepseek-chat&prompt_tokens=1000&max_tokens=500&at=2025-03-01T17:00:00Z');
  assert.equal(night.json.routes[0].total, '0.00082');
  assert.equal(night.json.routes[0].priced_at, 'card');
  assert.equal(night.json.routes[0].window.kind, 'daily');

  const body = { model: 'deepseek-chat', messages: [{ role: 'user', content: 'Hello there, how are you?' }], max_tokens: 1000 };
  const p = await admin('POST', '/quote?at=2025-03-01T12:00:00Z', body);
  assert.equal(p.status, 200, p.text);
  assert.ok(p.json.prompt_tokens > 0);
  assert.equal(p.json.prompt_tokens_exact, false, 'no tokenizer configured: an estimate');
  assert.equal(p.json.max_tokens, 1000);
  const same = await get(`/quote?model=deepseek-chat&prompt_tokens=${p.json.prompt_tokens}&max_tokens=1000&at=2025-03-01T12:00:00Z`);
  assert.equal(p.json.routes[0].total_pico, same.json.routes[0].total_pico);
  const comp = await admin('POST', '/quote', { model: 'deepseek-chat', prompt: 'Once upon a time', max_tokens: 10, at: '2025-03-01T12:00:00Z' });
  assert.equal(comp.status, 200, comp.text);
  assert.ok(comp.json.prompt_tokens > 0);

  refused(await get('/quote?model=nope&prompt_tokens=1&max_tokens=1'), 404, /does not exist/);
  refused(await admin('POST', '/quote', { ...body, model: 'nope' }), 404, /does not exist/);
  refused(await get('/quote?model=deepseek-chat&prompt_tokens=1'), 400, /max_tokens/);
  refused(await admin('POST', '/quote', { model: 'deepseek-chat', messages: body.messages }), 400, /max_tokens/);
  refused(await admin('POST', '/quote', { model: 'deepseek-chat', messages: 'hi', max_tokens: 1 }), 400, /messages/);
  refused(await admin('POST', '/quote', '{not json'), 400, /JSON/);
  refused(await get('/quote?model=deepseek-chat&prompt_tokens=x&max_tokens=1'), 400, /prompt_tokens/);
});

test('a card added over HTTP charges the requests sent within a second of the write', async () => {
  // a model the gateway routes but that has no card yet: unpriced
  const r0 = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'apimodel' }));
  assert.equal(r0.status, 200, r0.text);
  assert.equal(r0.headers.get('x-tollgate-charge'), null);
  const tw = Date.now();
  const c = await write('/prices/cards', { provider: 'deepseek', model: 'api-model', currency: 'USD', hit: '1', miss: '2',
    output: '3', from: new Date(Date.now() - 1000).toISOString() }, 'dave');
  assert.equal(c.status, 201, c.text);
  const t0 = Date.now();
  console.log(`# POST /prices/cards answered in ${t0 - tw} ms`);
  // Requests go out back to back until one is charged (its answer carries
  // x-tollgate-charge); the time is taken when that request was sent, so it
  // measures how soon the running gateway priced with the new card, not how
  // long the usage row took to reach PostgreSQL afterwards.
  let attempts = 0, sentAt = 0;
  const priced = await h.waitFor('a request charged after the card was added over HTTP', async () => {
    attempts++;
    sentAt = Date.now();
    const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'apimodel' }));
    assert.equal(r.status, 200, r.text);
    return r.headers.get('x-tollgate-charge') ? r : null;
  }, 5000, 10);
  const took = sentAt - t0;
  console.log(`# first request charged by the new card was sent ${took} ms after the write answered (request ${attempts})`);
  assert.ok(took < 1000, `priced ${took} ms after the write`);
  const [row] = await h.waitForRows(db, 1, `request_id = '${priced.headers.get('x-request-id')}'`);
  assert.equal(row.price_card_id, c.json.card.id);
  const pico = BigInt(row.cache_hit_tokens) * 1000000n + BigInt(row.cache_miss_tokens) * 2000000n +
    BigInt(row.completion_tokens) * 3000000n;
  assert.equal(BigInt(row.charge_pico), pico);
  const q = await get('/quote?model=apimodel&prompt_tokens=1000000&max_tokens=1000000');
  assert.equal(q.json.routes[0].total, '5');
});

test('PostgreSQL unreachable: clear 503 errors, nothing crashes', async () => {
  // a second gateway whose database does not answer (nothing listens on port 1)
  const dead = await h.startGateway(h.gatewayConfig({
    conninfo: 'host=127.0.0.1 port=1 dbname=none user=tollgate connect_timeout=1',
    providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
    models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']] },
  }));
  const call = async (method, path, body) => {
    const res = await fetch(dead.adminUrl + path, { method, headers: { 'x-tollgate-actor': 'alice' },
      body: body && JSON.stringify(body) });
    return { status: res.status, text: await res.text(), json: null };
  };
  for (const [method, path, body, re] of [
    ['GET', '/prices', undefined, /cannot connect to PostgreSQL/],
    ['GET', '/prices/preview?provider=deepseek&model=deepseek-chat&at=2025-03-01&hit=1&miss=1&output=1', undefined, /cannot connect/],
    ['POST', '/prices/cards', { provider: 'p', model: 'm', currency: 'USD', hit: '1', miss: '1', output: '1', from: '2030-01-01' }, /Nothing was read or saved/],
    ['GET', '/quote?model=deepseek-chat&prompt_tokens=1&max_tokens=1', undefined, /price book/],
  ]) {
    const r = await call(method, path, body);
    r.json = JSON.parse(r.text);
    refused(r, 503, re);
    assert.equal(r.json.error.type, 'api_error');
  }
  const health = await fetch(dead.adminUrl + '/healthz');
  assert.equal(health.status, 200, 'the admin listener still answers');
});
