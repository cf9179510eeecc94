// Cost and latency routing end to end: three simulators set up like real
// hosts of one model (cheap but slow to the first token with a small window;
// fast and dear; a large window at a middle price), the request's needs in
// headers, contradictory needs refused with the need named, the admin
// explanation, and an outage: the circuit opens, requests go elsewhere with no
// client errors, and a probe brings the provider back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const tokenizerDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;
// A simulator that can be stopped and restarted mid-run (an outage). It is
// stopped with SIGTERM (the simulator drops its calls and exits 0 at once):
// the harness's own cleanup then sees an exit code; after a SIGKILL it would
// wait for an exit event that has already happened.
async function startStoppableSim(...args) {
  const sim = await h.startSim(...args);
  const proc = sim.proc;
  const gone = new Promise((r) => proc.once('exit', r));
  sim.stop = async () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM'); await gone; };
  h.onCleanup(sim.stop); // runs before the harness's own (last registered first)
  return sim;
}

const db = h.createDatabase();
const key = h.createKey(db, 'router');
const from = '2020-01-01T00:00:00Z';
for (const [p, hit, miss, out] of [['cheap', '0.028', '0.28', '0.42'], ['fast', '0.2', '2', '6'], ['big', '0.05', '0.5', '1.5']])
  h.ctl(db, 'price', 'add', '--provider', p, '--model', 'm', '--currency', 'USD', '--hit', hit, '--miss', miss,
    '--output', out, '--from', from);

let cheap = await startStoppableSim('--name', 'cheap', '--ttft-ms', '300', '--tokens-per-s', '1000', '--completion-tokens', '8');
const fast = await h.startSim('--name', 'fast', '--ttft-ms', '5', '--tokens-per-s', '5000', '--completion-tokens', '8');
const big = await h.startSim('--name', 'big', '--ttft-ms', '120', '--tokens-per-s', '2000', '--completion-tokens', '8');
const house = await h.startSim('--name', 'house', '--completion-tokens', '8'); // our own engine
h.ctl(db, 'team', 'create', 'secret', '--private');
const privateKey = h.ctl(db, 'key', 'create', '--team', 'secret').trim();
const cheapPort = cheap.port;
const conf = h.gatewayConfig({
  conninfo: db,
  gateway: 'route_policy = cheapest\nbreaker_failures = 2\nbreaker_cooldown_ms = 1500\n',
  providers: [
    { name: 'cheap', url: cheap.url, kind: 'deepseek', extra: 'expect_ttft_ms = 300\nexpect_tokens_per_s = 1000\n' },
    { name: 'fast', url: fast.url, extra: 'expect_ttft_ms = 5\nexpect_tokens_per_s = 5000\n' },
    { name: 'big', url: big.url, extra: 'expect_ttft_ms = 120\nexpect_tokens_per_s = 2000\n' },
    { name: 'house', url: house.url, kind: 'engine' },
  ],
  models: { chat: [['cheap', 'm', 2048], ['fast', 'm', 8192], ['big', 'm', 100000]], mixed: [['cheap', 'm', 2048], ['house', 'm', 8192]] },
}).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokenizerDir}\n`);
const gw = await h.startGateway(conf);

const chat = (extra = {}, headers = {}) => h.post(gw, '/v1/chat/completions', key, h.chatBody({ max_tokens: 8, ...extra }), headers);
const served = (r) => r.headers.get('x-tollgate-provider');
const explainRow = async (r) => {
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  return row;
};

test('no needs: the cheapest expected cost, streamed or not', async () => {
  for (const stream of [false, true]) {
    const r = await chat({ stream });
    assert.equal(r.status, 200, r.text);
    assert.equal(served(r), 'cheap');
    assert.equal(r.headers.get('x-tollgate-attempts'), '1');
  }
});

test('a latency target the cheap one meets: still the cheap one', async () => {
  const r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '1000' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'cheap');
});

test('a target only the big and the dear one meet: the cheaper of those (big)', async () => {
  const r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '250' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'big');
});

test('a target only the dear one meets: the dear one', async () => {
  const r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '60' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'fast');
  const r2 = await chat({}, { 'x-tollgate-preference': 'fastest' });
  assert.equal(served(r2), 'fast');
});

test('an over-length prompt goes only where it fits', async () => {
  const before = (await cheap.stats()).requests.by_endpoint.chat_completions;
  const mid = await chat({ messages: [{ role: 'user', content: 'word '.repeat(3000) }] });
  assert.equal(mid.status, 200, mid.text);
  assert.ok(Number(mid.headers.get('x-tollgate-prompt-tokens')) > 2048);
  assert.equal(served(mid), 'big', 'over the cheap window: big is the cheaper of the two that fit');
  const midFast = await chat({ stream: true, messages: [{ role: 'user', content: 'word '.repeat(3000) }] },
    { 'x-tollgate-latency-target-ms': '60' });
  assert.equal(served(midFast), 'fast');
  const long = await chat({ messages: [{ role: 'user', content: 'word '.repeat(9000) }] });
  assert.equal(long.status, 200, long.text);
  assert.ok(Number(long.headers.get('x-tollgate-prompt-tokens')) > 8192);
  assert.equal(served(long), 'big');
  const longFast = await chat({ stream: true, messages: [{ role: 'user', content: 'word '.repeat(9000) }] },
    { 'x-tollgate-latency-target-ms': '60' });
  assert.equal(longFast.status, 422, 'only big holds it, and big is too slow for 60 ms');
  assert.equal(longFast.json.error.code, 'latency_target_unmet');
  assert.equal((await cheap.stats()).requests.by_endpoint.chat_completions, before, 'the small window was never tried');
});

test('contradictory or impossible needs: 422 naming the need; nothing forwarded', async () => {
  const forwarded = async () => (await cheap.stats()).requests.by_endpoint.chat_completions +
    (await fast.stats()).requests.by_endpoint.chat_completions + (await big.stats()).requests.by_endpoint.chat_completions;
  const before = await forwarded();
  let r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '1' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.error.code, 'latency_target_unmet');
  assert.equal(r.json.error.param, 'x-tollgate-latency-target-ms');
  assert.match(r.json.error.message, /latency target of 1 ms to the first token/);
  r = await chat({}, { 'x-tollgate-max-cost': '0.000000000001' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.error.code, 'max_cost_unmet');
  assert.equal(r.json.error.param, 'x-tollgate-max-cost');
  assert.match(r.json.error.message, /cost ceiling of 0\.000000000001.*the cheapest, cheap, is expected to cost 0\.0000\d+ USD/);
  // fast enough: only "fast"; cheap enough: not "fast"
  r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '60', 'x-tollgate-max-cost': '0.00002' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.error.code, 'needs_unmet');
  assert.match(r.json.error.message, /cannot both be met/);
  const row = await explainRow(r);
  assert.equal(row.http_status, 422);
  assert.equal(row.attempts, 0);
  assert.equal(await forwarded(), before);
});

test('a ceiling the cheap one meets keeps dear fallbacks out', async () => {
  const r = await chat({}, { 'x-tollgate-max-cost': '0.00002' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'cheap');
});

test('bad need values: 400 naming the header', async () => {
  const cases = [['x-tollgate-latency-target-ms', 'soon'], ['x-tollgate-latency-target-ms', '-5'],
    ['x-tollgate-max-cost', '1e-3'], ['x-tollgate-max-cost', '-1'], ['x-tollgate-preference', 'cheap'],
    ['x-tollgate-preference', 'round_robin']];
  for (const [name, value] of cases) {
    const r = await chat({}, { [name]: value });
    assert.equal(r.status, 400, `${name}: ${value}: ${r.text}`);
    assert.equal(r.json.error.code, 'invalid_header');
    assert.equal(r.json.error.param, name);
    assert.match(r.json.error.message, new RegExp(`Header ${name} `));
  }
});

test('the admin explanation: each candidate, its expected cost and latency, and why', async () => {
  const res = await fetch(`${gw.adminUrl}/route/explain?model=chat&prompt_tokens=5000&max_tokens=10&stream=1`);
  assert.equal(res.status, 200);
  const j = await res.json();
  assert.equal(j.policy, 'cheapest');
  assert.equal(j.decision.chosen, 'big');
  assert.equal(j.decision.runner_up, 'fast');
  assert.equal(j.decision.why, 'least expected cost');
  const byName = Object.fromEntries(j.candidates.map((c) => [c.provider, c]));
  assert.equal(byName.cheap.dropped, 'context_window');
  assert.equal(byName.fast.dropped, null);
  assert.equal(byName.fast.currency, 'USD');
  // 5000 prompt tokens at the miss price + 10 output at the output price, exactly
  assert.equal(BigInt(byName.fast.expected_cost_pico), 5000n * 2000000n + BigInt(j.expected_output_tokens) * 6000000n);
  assert.equal(BigInt(byName.big.expected_cost_pico), 5000n * 500000n + BigInt(j.expected_output_tokens) * 1500000n);
  assert.equal(byName.big.rank, 1);
  assert.ok(byName.big.latency_ms > byName.fast.latency_ms);
  assert.equal(byName.cheap.state.circuit, 'closed');
  const imp = await (await fetch(`${gw.adminUrl}/route/explain?model=chat&prompt_tokens=10&latency_target_ms=1&stream=1`)).json();
  assert.equal(imp.decision.chosen, null);
  assert.equal(imp.decision.code, 'latency_target_unmet');
  for (const [q, param] of [['model=nope&prompt_tokens=1', 'model'], ['prompt_tokens=1', 'model'], ['model=chat', 'prompt_tokens'],
    ['model=chat&prompt_tokens=x', 'prompt_tokens'], ['model=chat&prompt_tokens=1&preference=slow', 'x-tollgate-preference']]) {
    const b = await fetch(`${gw.adminUrl}/route/explain?${q}`);
    assert.ok(b.status === 400 || b.status === 404, q);
    assert.equal((await b.json()).error.param, param, q);
  }
});

test('tollgatectl route explain: the same explanation as a table, or JSON', async () => {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const out = execFileSync(h.BIN.ctl, ['route', 'explain', '--admin', gw.adminUrl, '--model', 'chat',
    '--prompt-tokens', '5000', '--max-tokens', '10', '--stream'], { encoding: 'utf8' });
  assert.match(out, /chosen: big \(least expected cost\); runner-up: fast/);
  assert.match(out, /^cheap\s+0\.\d+ USD .* context_window$/m);
  assert.match(out, /^big\s+0\.\d+ USD .* #1$/m);
  const json = JSON.parse(execFileSync(h.BIN.ctl, ['route', 'explain', '--admin', gw.adminUrl, '--model', 'chat',
    '--prompt-tokens', '10', '--latency-target-ms', '1', '--json'], { encoding: 'utf8' }));
  assert.equal(json.decision.code, 'latency_target_unmet');
  const bad = spawnSync(h.BIN.ctl, ['route', 'explain', '--admin', gw.adminUrl, '--model', 'nope', '--prompt-tokens', '1'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /answered 404: The model 'nope' does not exist/);
  const down = spawnSync(h.BIN.ctl, ['route', 'explain', '--admin', 'http://127.0.0.1:1', '--model', 'chat', '--prompt-tokens', '1'], { encoding: 'utf8' });
  assert.equal(down.status, 1);
  assert.match(down.stderr, /cannot connect/);
  const usage = spawnSync(h.BIN.ctl, ['route', 'explain', '--model', 'chat'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--admin, --model and --prompt-tokens are required/);
});

test('every decision is on its usage row', async () => {
  const r = await chat({ stream: true }, { 'x-tollgate-latency-target-ms': '250' });
  const row = await explainRow(r);
  const e = typeof row.route_explain === 'string' ? JSON.parse(row.route_explain) : row.route_explain;
  assert.equal(e.policy, 'cheapest');
  assert.equal(e.chosen, 'big');
  assert.equal(e.runner_up, 'fast');
  assert.equal(e.c.find((c) => c.p === 'cheap').drop, 'latency_target');
});

test('a private team: in-house providers only, or 403 naming why', async () => {
  const pub = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model: 'mixed', max_tokens: 8 }));
  assert.equal(served(pub), 'cheap');
  const priv = await h.post(gw, '/v1/chat/completions', privateKey, h.chatBody({ model: 'mixed', max_tokens: 8 }));
  assert.equal(priv.status, 200, priv.text);
  assert.equal(served(priv), 'house');
  const none = await h.post(gw, '/v1/chat/completions', privateKey, h.chatBody({ max_tokens: 8 }));
  assert.equal(none.status, 403, none.text);
  assert.equal(none.json.error.code, 'no_permitted_provider');
  assert.match(none.json.error.message, /cheap \(private_team\)/);
});

test('outage: the circuit opens, requests go elsewhere without client errors, a probe brings it back', async () => {
  await cheap.stop();
  const seen = [];
  for (let i = 0; i < 6; i++) {
    const r = await chat({ stream: i % 2 === 1 });
    assert.equal(r.status, 200, `request ${i} during the outage: ${r.text}`);
    assert.notEqual(served(r), 'cheap');
    seen.push(Number(r.headers.get('x-tollgate-attempts')));
  }
  // two failed attempts open the circuit; after that the dead provider is not tried
  assert.deepEqual(seen.slice(0, 2), [2, 2]);
  assert.deepEqual(seen.slice(2), [1, 1, 1, 1]);
  const ex = await (await fetch(`${gw.adminUrl}/route/explain?model=chat&prompt_tokens=10`)).json();
  assert.equal(ex.candidates[0].state.circuit, 'open');
  assert.equal(ex.candidates[0].dropped, 'circuit_open');
  // the provider comes back on the same port; after the cool-down one probe closes the circuit
  cheap = await startStoppableSim('--listen', `127.0.0.1:${cheapPort}`, '--name', 'cheap', '--ttft-ms', '300',
    '--tokens-per-s', '1000', '--completion-tokens', '8');
  await h.sleep(1600);
  const probe = await chat();
  assert.equal(probe.status, 200);
  assert.equal(served(probe), 'cheap', 'the probe went to the recovered provider');
  const next = await chat();
  assert.equal(served(next), 'cheap');
  const ex2 = await (await fetch(`${gw.adminUrl}/route/explain?model=chat&prompt_tokens=10`)).json();
  assert.equal(ex2.candidates[0].state.circuit, 'closed');
});

test('a discount window in force at the expected completion makes its provider the cheapest', async () => {
  const [[bigCard]] = h.psql(db, "select id from price_cards where provider = 'big'");
  const iso = (ms) => new Date(ms).toISOString();
  const from = Date.now() + 1000; // charged history is never re-priced: from the future
  const out = h.ctl(db, 'window', 'add', '--card', bigCard, '--once', '--from', iso(from),
    '--until', iso(Date.now() + 600000), '--precedence', '10', '--percent-off', '90');
  const winId = Number(out.match(/window (\d+)/)?.[1] ?? h.psql(db, `select max(id) from discount_windows`)[0][0]);
  const ex = await h.waitFor('the gateway to load the window', async () => {
    const j = await (await fetch(`${gw.adminUrl}/route/explain?model=chat&prompt_tokens=30&max_tokens=8`)).json();
    return j.decision.chosen === 'big' ? j : null;
  }, 5000, 100);
  const big = ex.candidates.find((c) => c.provider === 'big');
  assert.equal(big.discount_window_id, winId);
  assert.equal(ex.decision.runner_up, 'cheap');
  // the router prices at the EXPECTED completion instant, which may fall in the
  // window a little before the actual one does: send once the window has begun
  await h.sleep(Math.max(0, from + 100 - Date.now()));
  const r = await chat();
  assert.equal(served(r), 'big');
  const row = await explainRow(r);
  assert.equal(Number(row.discount_window_id), winId, 'charged with the window the router expected');
});
