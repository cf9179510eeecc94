// Every usage row is priced with the card and window in force: the charge is
// exact (integers, pico-units), equals what finance recomputes from the price
// tables alone, is shown to the client, and follows a new card within a
// second of `tollgatectl price add` on a running gateway.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const key = h.createKey(db, 'eta');
const sim = await h.startSim('--completion-tokens', '7');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  // the provider's name in the config is the name its price cards use
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }, { name: 'unpriced', url: sim.url }],
  models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']], free: [['unpriced', 'whatever']] },
}));

function cardInForce(provider, model) {
  const [row] = h.psql(db, `select id, cache_hit_price, cache_miss_price, output_price, coalesce(reasoning_price, output_price)
      from price_cards where provider = '${provider}' and model = '${model}' and effective_from <= now()
      order by effective_from desc limit 1`);
  return row.map(BigInt);
}

// The exact charge in pico-units from the row's tokens and the card's prices.
function expectedPico(row, card) {
  const [, hit, miss, out, reas] = card;
  const r = BigInt(row.reasoning_tokens ?? 0);
  return BigInt(row.cache_hit_tokens) * hit + BigInt(row.cache_miss_tokens) * miss +
    (BigInt(row.completion_tokens) - r) * out + r * reas;
}

function formatUsd(pico) { // exact decimal, at least 2 decimals, trailing zeros dropped beyond
  const s = pico.toString().padStart(13, '0');
  let int = s.slice(0, -12), frac = s.slice(-12).replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${int}.${frac} USD`;
}

test('a non-streamed request is charged exactly, and the client sees the charge', async () => {
  const long = 'Shared system prompt about quarterly numbers. '.repeat(30);
  const body = h.chatBody({ model: 'deepseek-chat', messages: [{ role: 'system', content: long }, { role: 'user', content: 'Hi' }] });
  await h.post(gw, '/v1/chat/completions', key, body); // warms the provider's prefix cache
  const r = await h.post(gw, '/v1/chat/completions', key, body);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.usage.prompt_cache_hit_tokens > 0, 'cache hits priced at the hit price');
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  const card = cardInForce('deepseek', 'deepseek-chat');
  assert.equal(BigInt(row.price_card_id), card[0]);
  assert.equal(row.discount_window_id, null);
  assert.equal(row.charge_currency, 'USD');
  assert.equal(row.pricing_flags, 0);
  assert.equal(BigInt(row.charge_pico), expectedPico(row, card));
  assert.equal(BigInt(row.cost_cache_hit_pico), BigInt(row.cache_hit_tokens) * card[1]);
  assert.equal(BigInt(row.cost_cache_miss_pico), BigInt(row.cache_miss_tokens) * card[2]);
  assert.equal(r.headers.get('x-tollgate-charge'), formatUsd(BigInt(row.charge_pico)));
  const [re] = h.psql(db, `select recomputed_pico, charge_pico from usage_charge_recomputed where request_id = '${row.request_id}'`);
  assert.equal(re[0], re[1], 'finance recomputes the same charge from the tables alone');
});

test('a streamed request: charged, the charge as an SSE comment before [DONE]', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'deepseek-chat', stream: true }));
  const m = r.text.match(/\n: x-tollgate-charge ([0-9.]+ USD)\n\ndata: \[DONE\]\n\n$/);
  assert.ok(m, r.text.slice(-200));
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(m[1], formatUsd(BigInt(row.charge_pico)));
  assert.equal(BigInt(row.charge_pico), expectedPico(row, cardInForce('deepseek', 'deepseek-chat')));
});

test('no card for the provider: the row is left unpriced (NULL), never zero', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'free' }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-charge'), null);
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.price_card_id, null);
  assert.equal(row.charge_pico, null);
});

test('a new card takes over on the running gateway within a second', async () => {
  const from = new Date(Date.now() + 300).toISOString();
  h.ctl(db, 'price', 'add', '--provider', 'deepseek', '--model', 'deepseek-chat', '--currency', 'USD',
    '--hit', '1', '--miss', '2', '--output', '3', '--from', from);
  const [newId] = h.psql(db, `select max(id) from price_cards`)[0];
  await h.sleep(Math.max(0, Date.parse(from) - Date.now()) + 50);
  const t0 = Date.now();
  const row = await h.waitFor('priced by the new card', async () => {
    const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'deepseek-chat' }));
    const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
    return row.price_card_id === Number(newId) ? row : null;
  }, 1500, 50);
  assert.ok(Date.now() - t0 < 1500);
  const pico = BigInt(row.cache_hit_tokens) * 1000000n + BigInt(row.cache_miss_tokens) * 2000000n +
    BigInt(row.completion_tokens) * 3000000n;
  assert.equal(BigInt(row.charge_pico), pico);
});
