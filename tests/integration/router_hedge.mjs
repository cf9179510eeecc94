// Hedging (docs/router.md): for a request with a latency need on a model with
// hedge_after_ms, a first attempt whose first byte is late gets a second
// attempt on the next route; the first to produce a byte is relayed, the other
// is cancelled and its cost goes to gateway_costs, never to the team's row.
// Also: no hedge when the first byte is in time or there is no latency need,
// the header lowering or turning it off, a bad header, both attempts failing
// (failover goes on), the first failing while the hedge is out (the hedge
// takes over), the client leaving during the race, and the per-minute cap.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'hedgers');
const from = '2020-01-01T00:00:00Z';
// [provider, upstream model, cache-miss price]: routing by cost puts the cheaper first
const prices = [['slow', 'm', '1'], ['fast', 'm', '2'], ['slow2', 'm', '3'],
  ['fast', 'q', '1'], ['slow', 'q', '2'],
  ['stall', 'f', '1'], ['bad', 'f', '2'], ['good', 'f', '3'],
  ['stall', 't', '1'], ['slow', 't', '2'], ['slow', 'g', '1'], ['garbled', 'g', '2']];
for (const [p, m, miss] of prices)
  h.ctl(db, 'price', 'add', '--provider', p, '--model', m, '--currency', 'USD', '--hit', '0.1', '--miss', miss,
    '--output', '4', '--from', from);

const slow = await h.startSim('--name', 'slow', '--ttft-ms', '700', '--completion-tokens', '5');
const slow2 = await h.startSim('--name', 'slow2', '--ttft-ms', '700', '--completion-tokens', '5');
const fast = await h.startSim('--name', 'fast', '--completion-tokens', '5');
const stall = await h.startSim('--name', 'stall', '--fault', 'stall');
const bad = await h.startSim('--name', 'bad', '--fault', '503');
const good = await h.startSim('--name', 'good', '--completion-tokens', '5');
const garbled = await h.startSim('--name', 'garbled', '--fault', 'garbage');
const quick = 'expect_ttft_ms = 50\nexpect_tokens_per_s = 1000\n';
const providers = [
  { name: 'slow', url: slow.url, extra: quick }, { name: 'slow2', url: slow2.url, extra: quick },
  { name: 'fast', url: fast.url, extra: quick }, { name: 'good', url: good.url, extra: quick },
  { name: 'stall', url: stall.url, extra: quick, firstByteMs: 500 }, { name: 'bad', url: bad.url, extra: quick },
  { name: 'garbled', url: garbled.url, extra: quick },
];
const models = {
  hedged: [['slow', 'm'], ['fast', 'm']],
  bothslow: [['slow', 'm'], ['slow2', 'm']],
  nolatency: [['slow', 'm'], ['fast', 'm']],
  intime: [['fast', 'q'], ['slow', 'q']],
  failing: [['stall', 'f'], ['bad', 'f'], ['good', 'f']],
  takeover: [['stall', 't'], ['slow', 't']],
  garbledhedge: [['slow', 'g'], ['garbled', 'g']],
};
// every model: cost routing, hedge after 100 ms; all but one with a latency need
function modelKeys(conf, extra = '') {
  for (const name of Object.keys(models))
    conf = conf.replace(`[model ${name}]\n`, `[model ${name}]\npolicy = cheapest\nhedge_after_ms = 100\n` +
      (name === 'nolatency' ? '' : 'latency_target_ms = 5000\n') + extra);
  return conf;
}
const gw = await h.startGateway(modelKeys(h.gatewayConfig({ conninfo: db, providers, models })));

const chat = (model, stream, headers = {}, extra = {}) =>
  h.post(gw, '/v1/chat/completions', key, h.chatBody({ model, stream, max_tokens: 5, ...extra }), headers);
const rowOf = async (r) => (await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`))[0];
const costsOf = (r) => h.psql(db, `select row_to_json(g) from gateway_costs g where request_id = ` +
  `'${r.headers.get('x-request-id')}' order by attempt`).map((x) => JSON.parse(x[0]));
async function waitCosts(r, n) {
  await h.waitFor(`${n} gateway_costs rows`, async () => costsOf(r).length >= n);
  return costsOf(r);
}
// what a simulator saw: chat requests (its stats requests are counted too) and cancellations
const requestsTo = async (sim) => {
  const r = (await sim.stats()).requests;
  return { total: r.by_endpoint.chat_completions, cancelled: r.cancelled };
};
function checkAnswer(r, stream) {
  assert.equal(r.status, 200, r.text);
  if (stream) {
    const ev = h.sseEvents(r.text.replace(/^: [^\n]*\n\n/gm, '')); // without the charge comment
    assert.equal(ev.at(-1), '[DONE]');
    assert.equal(ev.filter((e) => e === '[DONE]').length, 1, 'exactly one answer reached the client');
  } else {
    assert.equal(r.json.object, 'chat.completion');
  }
}

for (const stream of [false, true]) {
  test(`a late first byte is hedged; the hedge wins, the loser is the gateway's cost (stream ${stream})`, async () => {
    const before = await requestsTo(slow);
    const r = await chat('hedged', stream);
    checkAnswer(r, stream);
    assert.equal(r.headers.get('x-tollgate-provider'), 'fast');
    assert.equal(r.headers.get('x-tollgate-attempts'), '2');
    assert.equal(r.headers.get('x-tollgate-hedge'), 'won');
    const row = await rowOf(r);
    assert.equal(row.provider, 'fast');
    assert.equal(row.attempts, 2);
    assert.equal(row.http_status, 200);
    assert.equal(row.usage_complete, true);
    assert.equal(Number(row.completion_tokens), 5);
    const explain = row.route_explain;
    assert.deepEqual(explain.hedge, { after_ms: 100, provider: 'fast', outcome: 'won' });
    // the team has this one row; the slow provider's attempt is the gateway's
    const n = h.psql(db, `select count(*) from usage_events where request_id = '${r.headers.get('x-request-id')}'`);
    assert.equal(Number(n[0][0]), 1);
    const [cost] = await waitCosts(r, 1);
    assert.equal(cost.attempt, 1);
    assert.equal(cost.reason, 'hedge_loser');
    assert.equal(cost.provider, 'slow');
    assert.equal(cost.upstream_model, 'm');
    assert.equal(cost.model_requested, 'hedged');
    assert.equal(cost.usage_complete, false);
    // the gateway's own count of the prompt, as it told the client
    assert.equal(Number(cost.prompt_tokens), Number(r.headers.get('x-tollgate-prompt-tokens')));
    assert.ok(Number(cost.prompt_tokens) > 0);
    // priced as cache misses at slow's 1 USD per 1M tokens = 1e6 pico per token, no output
    assert.equal(BigInt(cost.charge_pico), BigInt(cost.prompt_tokens) * 1000000n);
    assert.equal(cost.charge_currency, 'USD');
    // the slow provider saw the request, and the gateway cancelled it: a
    // simulator notices a closed connection only when it next writes, which a
    // stream does token by token (a whole answer is one write, often accepted)
    assert.equal((await requestsTo(slow)).total, before.total + 1);
    await h.waitFor('the gateway logged the cancellation', async () =>
      gw.logs().includes(`request ${r.headers.get('x-request-id')}: cancelling attempt 1 (provider slow)`));
    if (stream)
      await h.waitFor('slow sim saw the cancellation', async () => (await requestsTo(slow)).cancelled > before.cancelled);
  });
}

test('routing learns the beaten first attempt\'s tail; cancelled attempts release their in-flight count', async () => {
  const j = await (await fetch(`${gw.adminUrl}/route/explain?model=hedged&prompt_tokens=10&max_tokens=5&latency_target_ms=5000`)).json();
  const byName = Object.fromEntries(j.candidates.map((c) => [c.provider, c]));
  // the two races above: slow was cancelled each time after at least 100 ms
  assert.equal(byName.slow.state.ttft_samples, 2);
  // at least the 100 ms it ran without a byte (the prior was 50); timers fire
  // on millisecond ticks
  assert.ok(byName.slow.expected_ttft_ms >= 95, `slow's expected TTFT ${byName.slow.expected_ttft_ms} ms`);
  assert.equal(byName.slow.state.attempts, 0, 'a cancelled attempt is neither a success nor a failure');
  assert.equal(byName.slow.state.in_flight, 0);
  assert.equal(byName.slow.state.circuit, 'closed');
  assert.equal(byName.fast.state.attempts, 2);
});

test('no hedge when the first byte is in time', async () => {
  const before = await requestsTo(slow);
  for (const stream of [false, true]) {
    const r = await chat('intime', stream);
    checkAnswer(r, stream);
    assert.equal(r.headers.get('x-tollgate-provider'), 'fast');
    assert.equal(r.headers.get('x-tollgate-attempts'), '1');
    assert.equal(r.headers.get('x-tollgate-hedge'), null);
    const row = await rowOf(r);
    assert.equal(row.route_explain.hedge, undefined);
    assert.equal(costsOf(r).length, 0);
  }
  await h.sleep(200);
  assert.equal((await requestsTo(slow)).total, before.total, 'the second route was never sent anything');
});

test('only requests with a latency need are hedged; the header lowers or turns off the hedge', async () => {
  // no latency need on the model: not hedged, the slow provider answers
  let r = await chat('nolatency', false);
  checkAnswer(r, false);
  assert.equal(r.headers.get('x-tollgate-provider'), 'slow');
  assert.equal(r.headers.get('x-tollgate-attempts'), '1');
  // ...but a need stated by the request makes it latency-critical
  r = await chat('nolatency', false, { 'x-tollgate-latency-target-ms': '5000' });
  checkAnswer(r, false);
  assert.equal(r.headers.get('x-tollgate-provider'), 'fast');
  assert.equal(r.headers.get('x-tollgate-hedge'), 'won');
  // 0 turns it off for this request
  r = await chat('hedged', true, { 'x-tollgate-hedge-after-ms': '0' });
  checkAnswer(r, true);
  assert.equal(r.headers.get('x-tollgate-provider'), 'slow');
  assert.equal(r.headers.get('x-tollgate-attempts'), '1');
  // a value above the model's cannot delay it past the model's 100 ms
  r = await chat('hedged', false, { 'x-tollgate-hedge-after-ms': '60000' });
  assert.equal(r.headers.get('x-tollgate-provider'), 'fast');
  // bad values: a 400 naming the header, nothing sent anywhere, a row with nothing used
  for (const v of ['soon', '-5', '600001']) {
    r = await chat('hedged', false, { 'x-tollgate-hedge-after-ms': v });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'invalid_header');
    assert.equal(r.json.error.param, 'x-tollgate-hedge-after-ms');
    assert.match(r.json.error.message, /x-tollgate-hedge-after-ms/);
    const row = await rowOf(r);
    assert.equal(row.http_status, 400);
    assert.equal(row.attempts, 0);
  }
});

test('both the first attempt and the hedge fail: failover goes on to the next route', async () => {
  for (const stream of [false, true]) {
    const r = await chat('failing', stream);
    checkAnswer(r, stream);
    assert.equal(r.headers.get('x-tollgate-provider'), 'good');
    assert.equal(r.headers.get('x-tollgate-attempts'), '3');
    const row = await rowOf(r);
    assert.equal(row.provider, 'good');
    assert.equal(row.route_explain.hedge.outcome, 'failed');
    assert.equal(costsOf(r).length, 0, 'failed attempts are not hedge losers');
  }
});

test('a hedge that answers garbage never wins: the first attempt answers', async () => {
  for (const stream of [false, true]) {
    const r = await chat('garbledhedge', stream);
    checkAnswer(r, stream);
    assert.equal(r.headers.get('x-tollgate-provider'), 'slow');
    assert.equal(r.headers.get('x-tollgate-attempts'), '2');
    assert.equal(r.headers.get('x-tollgate-hedge'), 'failed');
    assert.equal(costsOf(r).length, 0);
  }
});

test('the first attempt fails while the hedge is out: the hedge takes over', async () => {
  for (const stream of [false, true]) {
    const r = await chat('takeover', stream);
    checkAnswer(r, stream);
    assert.equal(r.headers.get('x-tollgate-provider'), 'slow');
    assert.equal(r.headers.get('x-tollgate-attempts'), '2');
    assert.equal(r.headers.get('x-tollgate-hedge'), 'took_over');
    const row = await rowOf(r);
    assert.equal(row.provider, 'slow');
    assert.equal(row.upstream_model, 't');
    assert.equal(costsOf(r).length, 0);
  }
});

test('the client leaves during the race: both attempts cancelled, row 499, the hedge is the gateway\'s cost', async () => {
  const before = await requestsTo(slow2);
  const ctl = new AbortController();
  const p = fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', signal: ctl.signal,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(h.chatBody({ model: 'bothslow', max_tokens: 5 })),
  }).catch((e) => e);
  await h.waitFor('the hedge reached slow2', async () => (await requestsTo(slow2)).total > before.total, 5000, 10);
  ctl.abort();
  assert.equal((await p).name, 'AbortError');
  const [row] = await h.waitForRows(db, 1, `model_requested = 'bothslow'`);
  assert.equal(row.http_status, 499);
  assert.equal(row.error_type, 'client_closed');
  assert.equal(row.attempts, 2);
  assert.equal(row.provider, 'slow', 'the row is the first attempt\'s');
  assert.equal(row.usage_complete, false);
  assert.equal(row.route_explain.hedge.outcome, 'client_gone');
  const costs = await waitCosts({ headers: new Map([['x-request-id', row.request_id]]) }, 1);
  assert.equal(costs.length, 1);
  assert.equal(costs[0].attempt, 2);
  assert.equal(costs[0].provider, 'slow2');
  for (const n of [1, 2])
    await h.waitFor(`the gateway cancelled attempt ${n}`, async () => gw.logs().includes(`request ${row.request_id}: ` +
      (n === 2 ? 'cancelling attempt 2 (provider slow2): the client left' : 'client went away')));
  const m = await (await fetch(gw.adminUrl + '/metrics')).text();
  assert.match(m, /tollgate_requests_in_flight 0/);
});

test('hedge_max_per_minute caps hedged attempts per gateway process', async () => {
  // a clock at the start of a minute: the cap's window cannot roll over mid-test
  const capped = await h.startGateway(modelKeys(h.gatewayConfig({
    conninfo: db, providers, models, gateway: 'hedge_max_per_minute = 1\ntest_clock = 2026-01-05T10:00:00Z\n',
  })), { TOLLGATE_TEST_CLOCK: '1' });
  const post = (hdrs = {}) => h.post(capped, '/v1/chat/completions', key, h.chatBody({ model: 'hedged', max_tokens: 5 }), hdrs);
  let r = await post();
  assert.equal(r.headers.get('x-tollgate-hedge'), 'won');
  r = await post();
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-provider'), 'slow');
  assert.equal(r.headers.get('x-tollgate-attempts'), '1');
  assert.equal(r.headers.get('x-tollgate-hedge'), 'capped');
  assert.equal((await rowOf(r)).route_explain.hedge.outcome, 'capped');
  const metrics = await (await fetch(`${capped.adminUrl}/metrics`)).text();
  assert.match(metrics, /tollgate_hedges_total\{event="sent"\} 1\n/);
  assert.match(metrics, /tollgate_hedges_total\{event="won"\} 1\n/);
  assert.match(metrics, /tollgate_hedges_total\{event="capped"\} 1\n/);
  await h.waitFor('the loser\'s cost row counted', async () =>
    /tollgate_gateway_cost_rows_written_total 1\n/.test(await (await fetch(`${capped.adminUrl}/metrics`)).text()));
});

test('a bad hedge_after_ms in the config is refused with the line', async () => {
  const conf = h.gatewayConfig({ conninfo: db, providers, models: { x: [['fast', 'm']] } })
    .replace('[model x]\n', '[model x]\nhedge_after_ms = soon\n');
  await assert.rejects(h.startGateway(conf), /hedge_after_ms/);
});
