// The response cache (docs/response-cache.md) with real Redis, PostgreSQL and
// simulators: an exact deterministic repeat is answered from the cache
// (streamed and not, and a stored answer replayed in the other form) without
// reaching the provider; the usage row says so and is charged by the rule;
// teams never share; keys that did not opt in are never cached; the request
// header and Cache-Control are obeyed; answers over the size limit and
// sampled requests are never stored; a corrupted entry is a miss with a log
// line; `tollgatectl usage verify` agrees with the rows under both rules.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const ns = 'rc' + randomBytes(4).toString('hex');
const nsFree = ns + 'f';
const sim = await h.startSim('--completion-tokens', '24');
const inhouse = await h.startSim('--completion-tokens', '24', '--seed', '9', '--name', 'inhouse');
const bigSim = await h.startSim('--completion-tokens', '400');
const base = (extra) => h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' },
    { name: 'deepseek-big', url: bigSim.url, kind: 'deepseek' }, { name: 'inhouse', url: inhouse.url, kind: 'engine' }],
  models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']], big: [['deepseek-big', 'deepseek-chat']],
    mixed: [['deepseek', 'deepseek-chat'], ['inhouse', 'tiny']] },
  gateway: `redis = ${process.env.TG_REDIS_URL}\nresponse_cache = on\nresponse_cache_timeout_ms = 300\n` +
    `response_cache_max_bytes = 2048\n${extra}`,
});
// the big provider is priced like deepseek
h.psql(process.env.TG_PG_ADMIN_CONNINFO.replace(/dbname=\S+/, `dbname=${db.match(/dbname=(\S+)/)[1]}`),
  `insert into price_providers (provider, tier_instant, created_by) values ('deepseek-big', 'completion', 'test');
   insert into price_cards (provider, model, currency, cache_hit_price, cache_miss_price, output_price, effective_from, created_by)
   values ('deepseek-big', 'deepseek-chat', 'USD', 28000, 280000, 420000, '2025-01-01', 'test')`);
const gw = await h.startGateway(base(`redis_namespace = ${ns}\ngovernance = on\n`));
const gwFree = await h.startGateway(base(`redis_namespace = ${nsFree}\nresponse_cache_charge = free\n`));

const key = h.createKey(db, 'alpha', '--response-cache', 'on');
const keyB = h.createKey(db, 'beta', '--response-cache', 'on');
const plain = h.createKey(db, 'gamma'); // not opted in
const redis = (...args) => execFileSync('redis-cli', ['-u', process.env.TG_REDIS_URL, ...args], { encoding: 'utf8' }).trim();
const entries = (n) => redis('--scan', '--pattern', `tg:rc:${n}:*`).split('\n').filter(Boolean);
const simTotal = async (s = sim) => (await s.stats()).requests.by_endpoint.chat_completions;
let seq = 0;
// a fresh deterministic question each time
const question = (extra = {}) => h.chatBody({ model: 'deepseek-chat', temperature: 0, max_tokens: 50,
  messages: [{ role: 'user', content: `Question number ${++seq} (${ns}): what is the answer?` }], ...extra });
const chat = (g, k, body, headers) => h.post(g, '/v1/chat/completions', k, body, headers);
const rowOf = async (r) => (await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`))[0];
// waits until the entry for the n-th stored answer is in Redis (the store is fire and forget)
const waitStored = (n, count) => h.waitFor(`${count} stored answer(s)`, async () => entries(n).length >= count, 5000);
// runs fn (which sends one cacheable request) and waits until its answer is stored
async function storing(n, fn) {
  const before = entries(n).length;
  const r = await fn();
  await waitStored(n, before + 1);
  return r;
}

function card() {
  const [row] = h.psql(db, `select id, cache_hit_price, cache_miss_price, output_price, coalesce(reasoning_price, output_price)
      from price_cards where provider = 'deepseek' and model = 'deepseek-chat' and effective_from <= now()
      order by effective_from desc limit 1`);
  return row.map(BigInt);
}
// SSE payloads ([DONE] as a string); comment-only events (the charge) dropped
const sseEvents = (text) => h.sseEvents(text.split('\n\n').filter((e) => e.split('\n').some((l) => l.startsWith('data:'))).join('\n\n'));
function streamText(text) {
  const ev = sseEvents(text);
  assert.equal(ev[ev.length - 1], '[DONE]');
  return ev.filter((e) => e !== '[DONE]' && e.choices.length).map((e) => e.choices[0].delta.content ?? '').join('');
}

test('an exact repeat is answered from the cache, not the provider; the row says so and is charged at the cache-hit price', async () => {
  const body = question();
  const r1 = await storing(ns, () => chat(gw, key, body));
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.headers.get('x-tollgate-cache'), 'miss');
  const before = await simTotal();
  // the same request written differently: other key order, stream options, user
  const same = { user: 'someone', ...Object.fromEntries(Object.entries(body).reverse()) };
  const r2 = await chat(gw, key, same);
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(await simTotal(), before, 'the provider saw no second request');
  assert.equal(r2.json.choices[0].message.content, r1.json.choices[0].message.content);
  assert.equal(r2.json.choices[0].finish_reason, r1.json.choices[0].finish_reason);
  assert.equal(r2.json.usage.prompt_tokens, r1.json.usage.prompt_tokens);
  assert.equal(r2.json.usage.completion_tokens, r1.json.usage.completion_tokens);
  assert.equal(r2.json.usage.prompt_cache_hit_tokens, r1.json.usage.prompt_tokens);
  assert.equal(r2.headers.get('x-tollgate-provider'), 'deepseek');
  assert.equal(r2.headers.get('x-tollgate-attempts'), '0');
  const row1 = await rowOf(r1), row2 = await rowOf(r2);
  assert.equal(row1.response_cache_hit, false);
  assert.equal(row2.response_cache_hit, true);
  assert.equal(row2.provider, 'deepseek');
  assert.equal(row2.upstream_model, 'deepseek-chat');
  assert.equal(row2.attempts, 0);
  assert.equal(row2.http_status, 200);
  assert.equal(row2.usage_complete, true);
  assert.equal(row2.prompt_tokens, row1.prompt_tokens);
  assert.equal(row2.completion_tokens, row1.completion_tokens);
  assert.equal(row2.cache_hit_tokens, row1.prompt_tokens);
  assert.equal(row2.cache_miss_tokens, 0);
  const c = card();
  assert.equal(BigInt(row2.price_card_id), c[0]);
  assert.equal(row2.pricing_flags, 0);
  const expected = BigInt(row2.prompt_tokens) * c[1] + BigInt(row2.completion_tokens) * c[3];
  assert.equal(BigInt(row2.charge_pico), expected);
  assert.ok(BigInt(row2.charge_pico) < BigInt(row1.charge_pico), 'cheaper than the provider round trip');
  assert.match(r2.headers.get('x-tollgate-charge'), /USD$/);
});

test('streamed: a repeat is replayed as a stream; stored streams replay as JSON and stored JSON as streams', async () => {
  const body = question({ stream: true });
  const s1 = await storing(ns, () => chat(gw, key, body));
  assert.equal(s1.status, 200);
  assert.equal(s1.headers.get('x-tollgate-cache'), 'miss');
  const text1 = streamText(s1.text);
  assert.ok(text1.length > 0);
  const before = await simTotal();
  const s2 = await chat(gw, key, body);
  assert.equal(s2.headers.get('x-tollgate-cache'), 'hit');
  assert.match(s2.headers.get('content-type'), /text\/event-stream/);
  assert.equal(streamText(s2.text), text1);
  const ev = sseEvents(s2.text);
  assert.equal(ev[0].choices[0].delta.role, 'assistant');
  assert.ok(!ev.some((e) => e !== '[DONE]' && e.choices.length === 0), 'no usage event unless asked');
  assert.match(s2.text, /: x-tollgate-charge [0-9.]+ USD\n\ndata: \[DONE\]\n\n$/);
  // the stored stream as a whole body
  const j = await chat(gw, key, { ...body, stream: false });
  assert.equal(j.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(j.json.choices[0].message.content, text1);
  // a stored whole body as a stream, with the usage event when asked
  const body2 = question();
  const w1 = await storing(ns, () => chat(gw, key, body2));
  const w2 = await chat(gw, key, { ...body2, stream: true, stream_options: { include_usage: true } });
  assert.equal(w2.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(streamText(w2.text), w1.json.choices[0].message.content);
  const usage = sseEvents(w2.text).find((e) => e !== '[DONE]' && e.choices.length === 0);
  assert.equal(usage.usage.completion_tokens, w1.json.usage.completion_tokens);
  assert.equal(await simTotal(), before + 1, 'only the first request of body2 reached the provider');
  const row = await rowOf(s2);
  assert.equal(row.response_cache_hit, true);
  assert.equal(row.streamed, true);
  // also through the official client
  const require = createRequire(process.env.NODE_PATH + '/');
  const OpenAI = require('openai').default ?? require('openai');
  const client = new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const stream = await client.chat.completions.create({ ...body, stream: true });
  let got = '';
  for await (const chunk of stream) got += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(got, text1);
});

test('completions: a repeat is answered from the cache, as a body and as a stream', async () => {
  const body = { model: 'deepseek-chat', prompt: `Once upon a time (${ns} ${++seq})`, temperature: 0, max_tokens: 20 };
  const c1 = await storing(ns, () => h.post(gw, '/v1/completions', key, body));
  assert.equal(c1.status, 200, c1.text);
  assert.equal(c1.headers.get('x-tollgate-cache'), 'miss');
  const before = await simTotal();
  const c2 = await h.post(gw, '/v1/completions', key, body);
  assert.equal(c2.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(c2.json.object, 'text_completion');
  assert.equal(c2.json.choices[0].text, c1.json.choices[0].text);
  const s = await h.post(gw, '/v1/completions', key, { ...body, stream: true });
  assert.equal(s.headers.get('x-tollgate-cache'), 'hit');
  const text = sseEvents(s.text).filter((e) => e !== '[DONE]' && e.choices.length).map((e) => e.choices[0].text).join('');
  assert.equal(text, c1.json.choices[0].text);
  assert.equal((await sim.stats()).requests.by_endpoint.completions, 1, 'one completions request reached the provider');
  assert.equal(await simTotal(), before);
  assert.equal((await rowOf(c2)).endpoint, 'completions');
});

test('two teams with the same request never share an answer', async () => {
  const body = question();
  await storing(ns, () => chat(gw, key, body));
  const before = await simTotal();
  const b1 = await chat(gw, keyB, body);
  assert.equal(b1.headers.get('x-tollgate-cache'), 'miss');
  assert.equal(await simTotal(), before + 1, 'team beta went to the provider');
  assert.equal((await rowOf(b1)).response_cache_hit, false);
});

test('a team that became private is never served an answer a hosted provider produced', async () => {
  const k = h.createKey(db, 'delta', '--response-cache', 'on');
  await h.sleep(300);
  const body = question({ model: 'mixed' });
  const r1 = await storing(ns, () => chat(gw, k, body));
  assert.equal(r1.headers.get('x-tollgate-provider'), 'deepseek');
  assert.equal((await chat(gw, k, body)).headers.get('x-tollgate-cache'), 'hit');
  h.psql(process.env.TG_PG_ADMIN_CONNINFO.replace(/dbname=\S+/, `dbname=${db.match(/dbname=(\S+)/)[1]}`),
    `update teams set private = true where name = 'delta'`);
  const seen = [];
  const r = await h.waitFor('served in-house', async () => {
    const x = await chat(gw, k, body);
    seen.push(`${x.headers.get('x-tollgate-cache')}/${x.headers.get('x-tollgate-provider')}`);
    return x.headers.get('x-tollgate-provider') === 'inhouse' ? x : null;
  }, 5000, 50);
  assert.equal(r.headers.get('x-tollgate-cache'), 'miss', 'the hosted answer was not served');
  assert.ok(!seen.slice(seen.indexOf('miss/inhouse')).some((v) => v === 'hit/deepseek'), seen.join(' '));
  const again = await h.waitFor('the in-house answer is stored', async () => {
    const x = await chat(gw, k, body);
    assert.equal(x.headers.get('x-tollgate-provider'), 'inhouse');
    return x.headers.get('x-tollgate-cache') === 'hit' ? x : null;
  }, 5000, 50);
  assert.equal((await rowOf(again)).provider, 'inhouse');
});

test('governance applies to hits: the budget hold is settled with the hit\'s actual charge', async () => {
  const k = h.createKey(db, 'epsilon', '--response-cache', 'on');
  h.ctl(db, 'budget', 'set', '--team', 'epsilon', '--hard', '1', '--period', 'month');
  await h.sleep(1200); // the gateway reloads budgets every 0.5 s
  const body = question();
  const r1 = await storing(ns, () => chat(gw, k, body));
  const r2 = await chat(gw, k, body);
  assert.equal(r2.headers.get('x-tollgate-cache'), 'hit');
  const rows = await h.waitForRows(db, 2, `team_id = (select id from teams where name = 'epsilon')`);
  assert.equal(rows.filter((r) => r.response_cache_hit).length, 1);
  const ceil = (p) => (BigInt(p) + 999999n) / 1000000n;
  const expected = rows.reduce((a, r) => a + ceil(r.charge_pico), 0n);
  await h.waitFor('spend settled in Redis', async () => {
    const res = await fetch(`${gw.url}/v1/tollgate/budget`, { headers: { Authorization: `Bearer ${k}` } });
    const b = (await res.json()).budgets[0];
    return BigInt(b.spent_micro) === expected && b.held_micro === '0';
  }, 5000);
  assert.ok(r1.status === 200 && expected > 0n);
});

test('opt-in: keys that did not opt in are never cached; the header opts in and out per request', async () => {
  const body = question();
  const p1 = await chat(gw, plain, body);
  const p2 = await chat(gw, plain, body);
  assert.equal(p1.headers.get('x-tollgate-cache'), null);
  assert.equal(p2.headers.get('x-tollgate-cache'), null);
  assert.equal((await rowOf(p2)).response_cache_hit, false);
  // per request: on for a key that did not opt in
  const body2 = question();
  const before = await simTotal();
  const o1 = await storing(ns, () => chat(gw, plain, body2, { 'x-tollgate-cache': 'on' }));
  assert.equal(o1.headers.get('x-tollgate-cache'), 'miss');
  const o2 = await chat(gw, plain, body2, { 'x-tollgate-cache': 'on' });
  assert.equal(o2.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(await simTotal(), before + 1);
  // off for a key that opted in: not served from the cache
  const off = await chat(gw, key, body2, { 'x-tollgate-cache': 'off' });
  assert.equal(off.headers.get('x-tollgate-cache'), null);
  assert.equal(await simTotal(), before + 2);
  // and the key's switch itself, on a running gateway
  h.ctl(db, 'key', 'cache', plain.slice(0, 11), 'on');
  await h.waitFor('key reloaded', async () => (await chat(gw, plain, body2)).headers.get('x-tollgate-cache') === 'hit', 5000, 100);
  h.ctl(db, 'key', 'cache', plain.slice(0, 11), 'off');
  await h.waitFor('key reloaded', async () => (await chat(gw, plain, body2)).headers.get('x-tollgate-cache') === null, 5000, 100);
  const audit = h.psql(db, `select count(*) from audit_log where action = 'key.response_cache'`)[0][0];
  assert.ok(Number(audit) >= 2, 'audited');
  // bad input to tollgatectl: a clear message and exit status 2 (usage) or 1 (no such key)
  assert.throws(() => h.ctl(db, 'key', 'create', '--team', 'gamma', '--response-cache', 'yes'),
    (e) => e.status === 2 && /must be on or off/.test(e.stderr));
  assert.throws(() => h.ctl(db, 'key', 'cache', plain.slice(0, 11), 'maybe'),
    (e) => e.status === 2 && /must be on or off/.test(e.stderr));
  assert.throws(() => h.ctl(db, 'key', 'cache', 'tg-nosuchk', 'on'),
    (e) => e.status === 1 && /no key with display prefix/.test(e.stderr));
  assert.throws(() => h.ctl(db, 'key', 'cache', plain.slice(0, 11)), (e) => e.status === 2);
});

test('Cache-Control: no-cache is not served from the cache (a fresh answer is stored); no-store neither', async () => {
  const body = question();
  await chat(gw, key, body);
  await h.waitFor('stored', async () => (await chat(gw, key, body)).headers.get('x-tollgate-cache') === 'hit', 5000, 50);
  let before = await simTotal();
  const nc = await chat(gw, key, body, { 'Cache-Control': 'no-cache' });
  assert.equal(nc.status, 200);
  assert.equal(nc.headers.get('x-tollgate-cache'), 'refresh');
  assert.equal(await simTotal(), before + 1);
  assert.equal((await rowOf(nc)).response_cache_hit, false);
  // no-store: neither served nor stored
  const body2 = question();
  const ns1 = await chat(gw, key, body2, { 'Cache-Control': 'no-store, max-age=0' });
  assert.equal(ns1.headers.get('x-tollgate-cache'), null);
  await h.sleep(300);
  before = await simTotal();
  const after = await chat(gw, key, body2);
  assert.equal(after.headers.get('x-tollgate-cache'), 'miss', 'nothing was stored');
  assert.equal(await simTotal(), before + 1);
});

test('answers over response_cache_max_bytes and sampled requests are never stored', async () => {
  const body = question({ model: 'big', max_tokens: 400 });
  const b1 = await chat(gw, key, body);
  assert.equal(b1.status, 200);
  assert.ok(b1.json.choices[0].message.content.length > 2048);
  await h.sleep(300);
  const before = await simTotal(bigSim);
  const b2 = await chat(gw, key, body);
  assert.equal(b2.headers.get('x-tollgate-cache'), 'miss');
  assert.equal(await simTotal(bigSim), before + 1);
  const m = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(m, /tollgate_response_cache_events_total\{event="too_big"\} [1-9]/);
  // temperature 0.7 without a seed: not deterministic, never cached
  const sampled = question({ temperature: 0.7 });
  const s1 = await chat(gw, key, sampled);
  assert.equal(s1.headers.get('x-tollgate-cache'), 'skip');
  await h.sleep(300);
  const n0 = await simTotal();
  const s2 = await chat(gw, key, sampled);
  assert.equal(s2.headers.get('x-tollgate-cache'), 'skip');
  assert.equal(await simTotal(), n0 + 1);
  // a seed makes it deterministic
  const seeded = question({ temperature: 0.7, seed: 11 });
  await chat(gw, key, seeded);
  await h.waitFor('seeded stored', async () => (await chat(gw, key, seeded)).headers.get('x-tollgate-cache') === 'hit', 5000, 50);
});

test('a corrupted entry in Redis is a miss with a log line, never a crash; the fresh answer replaces it', async () => {
  const body = question();
  const before = entries(ns);
  await chat(gw, key, body);
  const added = await h.waitFor('stored', async () => entries(ns).filter((k) => !before.includes(k)), 5000);
  assert.equal(added.length, 1);
  execFileSync('redis-cli', ['-u', process.env.TG_REDIS_URL, '-x', 'SET', added[0]],
    { input: Buffer.from([0xff, 0x00, 0x7b, 0x22, 0x76, 0x22, 0xc3, 0x28, 0x0a]) });
  const n0 = await simTotal();
  const r = await chat(gw, key, body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-tollgate-cache'), 'miss');
  assert.equal(await simTotal(), n0 + 1);
  await h.waitFor('log line', async () => gw.logs().includes('cannot be read'), 3000);
  // valid JSON of another team under this key: refused as well
  redis('SET', added[0], JSON.stringify({ v: 1, team: 999999, kind: 'chat', created: 1, content: 'stolen',
    finish_reason: 'stop', provider: 'deepseek', upstream_model: 'deepseek-chat', usage: { prompt_tokens: 1, completion_tokens: 1 } }));
  const r2 = await chat(gw, key, body);
  assert.notEqual(r2.json.choices[0].message.content, 'stolen');
  await h.waitFor('replaced by a fresh answer', async () => (await chat(gw, key, body)).headers.get('x-tollgate-cache') === 'hit', 5000, 50);
  const m = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(m, /tollgate_response_cache_events_total\{event="corrupt"\} [2-9]/);
  assert.match(m, /tollgate_response_cache_events_total\{event="hit"\} [1-9]/);
  assert.match(m, /tollgate_response_cache_lookup_seconds_count [1-9]/);
});

test('rule free: a hit charges nothing (pricing flag 32), and usage verify agrees with every row', async () => {
  const body = question();
  const r1 = await storing(nsFree, () => chat(gwFree, key, body));
  assert.equal(r1.status, 200);
  const r2 = await chat(gwFree, key, body);
  assert.equal(r2.headers.get('x-tollgate-cache'), 'hit');
  assert.equal(r2.headers.get('x-tollgate-charge'), '0.00 USD');
  const row = await rowOf(r2);
  assert.equal(row.response_cache_hit, true);
  assert.equal(BigInt(row.charge_pico), 0n);
  assert.equal(row.pricing_flags, 32);
  assert.equal(BigInt(row.price_card_id), card()[0]);
  for (const c of ['cost_cache_hit_pico', 'cost_cache_miss_pico', 'cost_output_pico', 'cost_reasoning_pico'])
    assert.equal(BigInt(row[c]), 0n, c);
  await h.sleep(200);
  const from = '2020-01-01', to = '2100-01-01';
  const out = h.ctl(db, 'usage', 'verify', '--from', from, '--to', to);
  assert.match(out, /OK: 0 difference\(s\)/);
  assert.match(out, /response-cache hits charged free: [1-9]\d* \(0 not exactly zero\)/);
  // a tampered free row is caught
  h.psql(process.env.TG_PG_ADMIN_CONNINFO.replace(/dbname=\S+/, `dbname=${db.match(/dbname=(\S+)/)[1]}`),
    `update usage_events set charge_pico = 1, cost_output_pico = 1 where request_id = '${row.request_id}'`);
  assert.throws(() => h.ctl(db, 'usage', 'verify', '--from', from, '--to', to), (e) => /FAILED/.test(e.stdout) && e.stdout.includes(row.request_id));
  // exactly one row per request, whatever the cache did
  const dups = h.psql(db, `select count(*) - count(distinct request_id) from usage_events`)[0][0];
  assert.equal(dups, '0');
});

test('routing counts nothing in flight once requests are done, hits included', async () => {
  // a hit never reaches a provider: the count routing took when it planned
  // the request is given back when the exchange ends
  for (const g of [gw, gwFree]) {
    const j = await (await fetch(`${g.adminUrl}/route/explain?model=deepseek-chat&prompt_tokens=10&max_tokens=5`)).json();
    for (const c of j.candidates) assert.equal(c.state.in_flight, 0, `${c.provider} in flight`);
  }
});
