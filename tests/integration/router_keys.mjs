// Per-key routing rules and defaults end to end (docs/router.md, "Per-key
// rules and defaults"): keys made with tollgatectl carry provider allow and
// deny lists, a private flag and default needs; a request header can narrow
// the rules but never widen them, and overrides the defaults; a model's
// defaults come from the config; changes reach the running gateway through
// NOTIFY; every drop is named on the usage row; bad values are refused
// clearly by tollgatectl and by the gateway.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const from = '2020-01-01T00:00:00Z';
// expected cost of a small request: cheap < big < fast
for (const [p, hit, miss, out] of [['cheap', '0.028', '0.28', '0.42'], ['fast', '0.2', '2', '6'], ['big', '0.05', '0.5', '1.5']])
  h.ctl(db, 'price', 'add', '--provider', p, '--model', 'm', '--currency', 'USD', '--hit', hit, '--miss', miss,
    '--output', out, '--from', from);

const cheap = await h.startSim('--name', 'cheap', '--ttft-ms', '300', '--tokens-per-s', '1000', '--completion-tokens', '8');
const fast = await h.startSim('--name', 'fast', '--ttft-ms', '5', '--tokens-per-s', '5000', '--completion-tokens', '8');
const big = await h.startSim('--name', 'big', '--ttft-ms', '120', '--tokens-per-s', '2000', '--completion-tokens', '8');
const house = await h.startSim('--name', 'house', '--completion-tokens', '8'); // our own engine
const routes = [['cheap', 'm', 100000], ['fast', 'm', 100000], ['big', 'm', 100000]];
const conf = h.gatewayConfig({
  conninfo: db,
  gateway: 'route_policy = cheapest\n',
  providers: [
    { name: 'cheap', url: cheap.url, kind: 'deepseek', extra: 'expect_ttft_ms = 300\nexpect_tokens_per_s = 1000\n' },
    { name: 'fast', url: fast.url, extra: 'expect_ttft_ms = 5\nexpect_tokens_per_s = 5000\n' },
    { name: 'big', url: big.url, extra: 'expect_ttft_ms = 120\nexpect_tokens_per_s = 2000\n' },
    { name: 'house', url: house.url, kind: 'engine' },
  ],
  models: { chat: routes, slowok: routes, mixed: [['cheap', 'm', 100000], ['house', 'm', 100000]] },
}).replace('[model slowok]\n', '[model slowok]\nlatency_target_ms = 250\n');

// keys: made before the gateway starts, so the first load has them all
const key = (name, ...args) => h.createKey(db, name, ...args);
const plain = key('plain');
const denyCheap = key('deny', '--deny-providers', 'cheap');
const onlyFast = key('allow', '--allow-providers', 'fast,house');
const privKey = key('priv', '--private');
const target250 = key('target', '--latency-target-ms', '250');
const prefFast = key('pref', '--preference', 'fastest');
const tinyCeiling = key('ceiling', '--max-cost', '0.000000000001');
const target1000 = key('target1000', '--latency-target-ms', '1000');
const changing = key('changing');
const gw = await h.startGateway(conf);

const chat = (k, extra = {}, headers = {}) =>
  h.post(gw, '/v1/chat/completions', k, h.chatBody({ max_tokens: 8, ...extra }), headers);
const served = (r) => r.headers.get('x-tollgate-provider');
const explainOf = async (r) => {
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  return typeof row.route_explain === 'string' ? JSON.parse(row.route_explain) : row.route_explain;
};
const dropOf = (e, p) => e.c.find((c) => c.p === p).drop;

test('a key without rules: the cheapest', async () => {
  const r = await chat(plain);
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'cheap');
});

test("a key's deny list is respected, and the usage row names the rule", async () => {
  for (const stream of [false, true]) {
    const r = await chat(denyCheap, { stream });
    assert.equal(r.status, 200, r.text);
    assert.equal(served(r), 'big');
    const e = await explainOf(r);
    assert.equal(dropOf(e, 'cheap'), 'key_denied');
    assert.equal(dropOf(e, 'big'), undefined);
  }
});

test("a key's allow list is respected, and the usage row names the rule", async () => {
  const r = await chat(onlyFast);
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'fast');
  const e = await explainOf(r);
  assert.equal(dropOf(e, 'cheap'), 'key_not_allowed');
  assert.equal(dropOf(e, 'big'), 'key_not_allowed');
  // a model none of whose providers the key may use: 403 naming each and why
  const none = await h.post(gw, '/v1/chat/completions', denyCheap, h.chatBody({ model: 'mixed', max_tokens: 8 }),
    { 'x-tollgate-deny-providers': 'house' });
  assert.equal(none.status, 403, none.text);
  assert.equal(none.json.error.code, 'no_permitted_provider');
  assert.match(none.json.error.message, /cheap \(key_denied\), house \(request_denied\)/);
});

test('a request header narrows the rules and can never widen them', async () => {
  // narrowing an unrestricted key works
  let r = await chat(plain, {}, { 'x-tollgate-deny-providers': 'cheap' });
  assert.equal(served(r), 'big');
  assert.equal(dropOf(await explainOf(r), 'cheap'), 'request_denied');
  r = await chat(plain, {}, { 'x-tollgate-allow-providers': 'fast' });
  assert.equal(served(r), 'fast');
  assert.equal(dropOf(await explainOf(r), 'cheap'), 'request_not_allowed');
  // allowing what the key denies: refused, nothing forwarded
  const before = (await cheap.stats()).requests.by_endpoint.chat_completions;
  r = await chat(denyCheap, {}, { 'x-tollgate-allow-providers': 'cheap' });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.error.code, 'no_permitted_provider');
  assert.match(r.json.error.message, /never widen/);
  assert.match(r.json.error.message, /cheap \(key_denied\)/);
  const e = await explainOf(r);
  assert.equal(e.error, 'no_permitted_provider');
  assert.equal(dropOf(e, 'cheap'), 'key_denied');
  // allowing what the key's allow list leaves out
  r = await chat(onlyFast, {}, { 'x-tollgate-allow-providers': 'cheap,big' });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /cheap \(key_not_allowed\)/);
  // a private key stays in-house whatever the request says
  r = await h.post(gw, '/v1/chat/completions', privKey, h.chatBody({ model: 'mixed', max_tokens: 8 }),
    { 'x-tollgate-allow-providers': 'cheap,house' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'house');
  assert.equal(dropOf(await explainOf(r), 'cheap'), 'private_key');
  r = await chat(privKey, {}, { 'x-tollgate-allow-providers': 'cheap' });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.error.message, /cheap \(private_key\)/);
  assert.equal((await cheap.stats()).requests.by_endpoint.chat_completions, before, 'nothing reached the denied provider');
});

test("a key's default latency target applies, and the row says it is the key's", async () => {
  for (const stream of [false, true]) {
    const r = await chat(target250, { stream });
    assert.equal(r.status, 200, r.text);
    assert.equal(served(r), 'big', 'cheap (300 ms to the first token) misses the key default of 250 ms');
    const e = await explainOf(r);
    assert.equal(dropOf(e, 'cheap'), 'latency_target');
    assert.deepEqual(e.need, { lat: 250, lat_by: 'key' });
  }
});

test("headers override a key's defaults", async () => {
  let r = await chat(target250, { stream: true }, { 'x-tollgate-latency-target-ms': '60' });
  assert.equal(served(r), 'fast');
  assert.equal((await explainOf(r)).need.lat_by, 'request');
  r = await chat(target250, { stream: true }, { 'x-tollgate-latency-target-ms': 'none' });
  assert.equal(served(r), 'cheap', "'none' removes the key's default target");
  assert.equal((await explainOf(r)).need, undefined);
  r = await chat(prefFast);
  assert.equal(served(r), 'fast', "the key's default preference");
  let e = await explainOf(r);
  assert.equal(e.policy, 'fastest');
  assert.equal(e.need.pref_by, 'key');
  r = await chat(prefFast, {}, { 'x-tollgate-preference': 'cheapest' });
  assert.equal(served(r), 'cheap');
  assert.equal((await explainOf(r)).need.pref_by, 'request');
  // a default ceiling no provider meets: 422 that says it is the key's default
  r = await chat(tinyCeiling);
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.error.code, 'max_cost_unmet');
  assert.match(r.json.error.message, /The cost ceiling is this API key's default; a request overrides it with the x-tollgate-max-cost header/);
  r = await chat(tinyCeiling, {}, { 'x-tollgate-max-cost': '0.01' });
  assert.equal(r.status, 200, r.text);
  assert.equal(served(r), 'cheap');
  e = await explainOf(r);
  assert.equal(e.need.cost, '0.01');
  assert.equal(e.need.cost_by, 'request');
  r = await chat(tinyCeiling, {}, { 'x-tollgate-max-cost': 'none' });
  assert.equal(r.status, 200, r.text);
});

test("a model's default applies when neither request nor key states one; the key's beats it", async () => {
  let r = await chat(plain, { model: 'slowok', stream: true });
  assert.equal(served(r), 'big');
  assert.deepEqual((await explainOf(r)).need, { lat: 250, lat_by: 'model' });
  r = await chat(target1000, { model: 'slowok', stream: true });
  assert.equal(served(r), 'cheap', "the key's 1000 ms default beats the model's 250");
  assert.deepEqual((await explainOf(r)).need, { lat: 1000, lat_by: 'key' });
  r = await chat(plain, { model: 'slowok', stream: true }, { 'x-tollgate-latency-target-ms': '60' });
  assert.equal(served(r), 'fast');
  const ex = await (await fetch(`${gw.adminUrl}/route/explain?model=slowok&prompt_tokens=10&stream=1&deny_providers=big`)).json();
  assert.deepEqual(ex.needs, { latency_target_ms: 250, latency_target_from: 'model' });
  assert.equal(ex.decision.chosen, 'fast');
  assert.equal(ex.candidates.find((c) => c.provider === 'big').dropped, 'request_denied');
});

test('tollgatectl key set: a change reaches the running gateway at once', async () => {
  assert.equal(served(await chat(changing)), 'cheap');
  const id = h.psql(db, "select k.id from api_keys k join teams t on t.id = k.team_id where t.name = 'changing'")[0][0];
  const out = h.ctl(db, 'key', 'set', id, '--deny-providers', 'cheap,fast', '--latency-target-ms', '5000');
  assert.match(out, /deny providers:\s+cheap,fast/);
  assert.match(out, /latency target ms: 5000/);
  const t0 = Date.now();
  await h.waitFor('the gateway to apply the new deny list', async () => served(await chat(changing)) === 'big', 3000, 50);
  const took = Date.now() - t0;
  console.log(`# key set -> first request routed by the new rule: ${took} ms`);
  assert.ok(took < 2000, `applied within ${took} ms`);
  const [[action, before, afterRow]] = h.psql(db,
    `select action, before->>'deny_providers', after->>'deny_providers' from audit_log where object = 'key:${id}' and action = 'key.route'`);
  assert.equal(action, 'key.route');
  assert.equal(before, '', 'no deny list before (psql prints NULL as empty)');
  assert.deepEqual(JSON.parse(afterRow), ['cheap', 'fast']);
  h.ctl(db, 'key', 'set', id, '--deny-providers', 'none', '--latency-target-ms', 'none');
  await h.waitFor('the gateway to drop the deny list', async () => served(await chat(changing)) === 'cheap', 3000, 50);
  // no options: shows the key's routing and changes nothing
  const shown = h.ctl(db, 'key', 'set', id);
  assert.match(shown, /allow providers:\s+all\n\s+deny providers:\s+none/);
  assert.doesNotMatch(shown, /apply the change/);
});

test('bad rule and need values in headers: 400 naming the header', async () => {
  const cases = [['x-tollgate-allow-providers', 'cheap fast', /letters, digits/], ['x-tollgate-allow-providers', '', /1 to 255/],
    ['x-tollgate-deny-providers', 'cheap,,big', /no empty entries/], ['x-tollgate-deny-providers', 'cheapp', /names provider 'cheapp', which this gateway does not have \(it has: cheap, fast, big, house\)/],
    ['x-tollgate-allow-providers', 'cheap,cheap', /twice/], ['x-tollgate-latency-target-ms', 'never', /milliseconds/],
    ['x-tollgate-max-cost', 'lots', /decimal/]];
  for (const [name, value, why] of cases) {
    const r = await chat(plain, {}, { [name]: value });
    assert.equal(r.status, 400, `${name}: '${value}': ${r.text}`);
    assert.equal(r.json.error.code, 'invalid_header');
    assert.equal(r.json.error.param, name);
    assert.match(r.json.error.message, why);
  }
});

test('bad values in tollgatectl: exit 2 with a clear message, nothing stored', async () => {
  const count = () => Number(h.psql(db, 'select count(*) from api_keys')[0][0]);
  const n = count();
  const cases = [
    [['--allow-providers', 'a b'], /invalid --allow-providers: .*letters, digits/],
    [['--deny-providers', ''], /invalid --deny-providers/],
    [['--allow-providers', 'cheap', '--deny-providers', 'big,cheap'], /provider 'cheap' is both allowed and denied/],
    [['--latency-target-ms', '0'], /invalid --latency-target-ms: must be a positive integer/],
    [['--latency-target-ms', '3600001'], /invalid --latency-target-ms/],
    [['--max-cost', '-1'], /invalid --max-cost: must be a non-negative decimal/],
    [['--max-cost', '0.0000000000001'], /invalid --max-cost/],
    [['--max-cost', '1000001'], /invalid --max-cost: at most 1000000/],
    [['--preference', 'cheap'], /invalid --preference: must be cheapest, fastest or balanced/],
    [['--private', '--no-private'], /contradict/],
  ];
  for (const [args, why] of cases) {
    const p = spawnSync(h.BIN.ctl, ['--db', db, 'key', 'create', '--team', 'plain', ...args], { encoding: 'utf8' });
    assert.equal(p.status, 2, `${args.join(' ')}: ${p.stderr}`);
    assert.match(p.stderr, why, args.join(' '));
    assert.equal(p.stdout, '', 'no key printed');
  }
  assert.equal(count(), n);
  // key set: a contradiction with what is stored is refused by the database, clearly
  const id = h.psql(db, "select k.id from api_keys k join teams t on t.id = k.team_id where t.name = 'deny'")[0][0];
  let p = spawnSync(h.BIN.ctl, ['--db', db, 'key', 'set', id, '--allow-providers', 'cheap'], { encoding: 'utf8' });
  assert.equal(p.status, 1, p.stderr);
  assert.match(p.stderr, /a provider would be both allowed and denied for this key/);
  p = spawnSync(h.BIN.ctl, ['--db', db, 'key', 'set', '999999', '--private'], { encoding: 'utf8' });
  assert.equal(p.status, 1);
  assert.match(p.stderr, /key set: no key with id '999999'/);
  // a provider no price card names: stored, with a warning
  p = spawnSync(h.BIN.ctl, ['--db', db, 'key', 'set', id, '--deny-providers', 'cheap,nosuch'], { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stderr, /warning: no price card names provider 'nosuch'/);
  assert.doesNotMatch(p.stderr, /'cheap'/);
});

test('bad model defaults in the config: the gateway refuses to start, naming the line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-rk-'));
  h.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  for (const [line, why] of [['latency_target_ms = soon', /:\d+: latency_target_ms must be a positive integer of milliseconds/],
    ['latency_target_ms = 0', /latency_target_ms must be a positive integer/],
    ['max_cost = 1e-3', /:\d+: max_cost must be a non-negative decimal amount/],
    ['max_cost = 1000001', /max_cost must be at most 1000000/]]) {
    const file = join(dir, 'bad.conf');
    writeFileSync(file, conf.replace('[model slowok]\n', `[model slowok]\n${line}\n`).replaceAll('@SPOOL@', join(dir, 'spool')));
    const p = spawnSync(h.BIN.tollgate, ['--config', file, '--port-file', join(dir, 'ports')], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(p.status, 0, `${line}: ${p.stderr}`);
    assert.match(p.stderr + p.stdout, why, line);
  }
});
