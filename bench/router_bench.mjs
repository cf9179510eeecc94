// Driver of bench/router.sh: replays one synthetic trace through tollgate
// under each routing policy (fresh database, simulators and gateway per
// policy; same trace, same schedule, same outage and discount window relative
// to the start) and prints a table. Uses the integration-test harness for
// processes and the database.
import * as h from '../tests/integration/lib/harness.mjs';
import { seededText } from './trace.mjs';

const opt = { requests: 200, intervalMs: 150, policies: ['cheapest', 'round_robin', 'list_price', 'fastest'] };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--requests') opt.requests = Number(v);
  else if (k === '--interval-ms') opt.intervalMs = Number(v);
  else if (k === '--policies') opt.policies = v.split(',');
}
h.requireEnv();
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

// ---- the trace (deterministic) -------------------------------------------
const { rand, between, words } = seededText(7);
const prefixes = [0, 1, 2].map(() => words(1500));
const trace = [];
for (let i = 0; i < opt.requests; i++) {
  const r = rand();
  const len = r < 0.55 ? between(100, 800) : r < 0.80 ? between(3000, 12000) : r < 0.92 ? between(20000, 60000) : between(66000, 70000);
  const shared = rand() < 0.4;
  const stream = rand() < 0.5;
  const target = rand() < 0.3 ? (stream ? 400 : 1000) : 0; // ms: to first token (streams) or whole answer
  const messages = shared
    ? [{ role: 'system', content: prefixes[i % 3] }, { role: 'user', content: words(Math.max(10, len - 1500)) }]
    : [{ role: 'user', content: words(len) }];
  trace.push({ at: i * opt.intervalMs, stream, target, len, body: { model: 'chat', messages, stream, max_tokens: between(64, 256) } });
}

// ---- providers: like the hosts of the issue -------------------------------
const providers = [
  // DeepSeek-like: cheapest list price, slow to the first token, 64K window; off-peak window mid-trace
  { name: 'cheap', ttft: 600, tps: 200, context: 65536, prices: ['0.028', '0.28', '0.42'] },
  // a big cloud: about 2.5x the price, near-zero latency, 128K
  { name: 'fast', ttft: 40, tps: 1000, context: 131072, prices: ['0.07', '0.70', '1.05'] },
  // a large-context host: cheap input, dear output, 160K
  { name: 'big', ttft: 250, tps: 300, context: 163840, prices: ['0.014', '0.14', '1.10'] },
];
const outage = { from: 0.40, until: 0.65 }; // share of the trace during which "cheap" is down
const window = { from: 0.10, until: 0.35, percentOff: '50' }; // on cheap's card

async function runPolicy(policy) {
  const log = (m) => process.env.BENCH_DEBUG && console.error(`[${policy}] ${m}`);
  const db = h.createDatabase();
  const key = h.createKey(db, 'bench');
  for (const p of providers)
    h.ctl(db, 'price', 'add', '--provider', p.name, '--model', 'm', '--currency', 'USD', '--hit', p.prices[0],
      '--miss', p.prices[1], '--output', p.prices[2], '--from', '2020-01-01T00:00:00Z');
  const sims = {};
  const simArgs = (p) => ['--name', p.name, '--ttft-ms', String(p.ttft), '--tokens-per-s', String(p.tps),
    '--completion-tokens', '256', '--context', '0'];
  for (const p of providers) sims[p.name] = await startStoppableSim(...simArgs(p));
  const conf = h.gatewayConfig({
    conninfo: db,
    gateway: `route_policy = ${policy}\nbreaker_failures = 3\nbreaker_cooldown_ms = 2000\nlog_level = error\n` +
      'max_body_bytes = 8388608\n',
    providers: providers.map((p) => ({ name: p.name, url: sims[p.name].url, kind: 'deepseek', firstByteMs: 10000,
      idleMs: 10000, extra: `expect_ttft_ms = ${p.ttft}\nexpect_tokens_per_s = ${p.tps}\nmax_connections = 256\n` })),
    models: { chat: providers.map((p) => [p.name, 'm', p.context]) },
  }).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokenizerDir}\n`);
  log('sims up');
  const gw = await h.startGateway(conf);
  log('gateway up');
  const total = trace.at(-1).at;
  const t0 = Date.now() + 500;
  const iso = (ms) => new Date(ms).toISOString();
  const [[cardId]] = h.psql(db, "select id from price_cards where provider = 'cheap'");
  h.ctl(db, 'window', 'add', '--card', cardId, '--once', '--from', iso(t0 + window.from * total),
    '--until', iso(t0 + window.until * total), '--precedence', '10', '--percent-off', window.percentOff);
  log('window added');
  await h.sleep(Math.max(0, t0 - Date.now()));
  const cheapPort = sims.cheap.port;
  const timers = [
    setTimeout(() => sims.cheap.stop(), outage.from * total),
    setTimeout(async () => { sims.cheap = await startStoppableSim('--listen', `127.0.0.1:${cheapPort}`, ...simArgs(providers[0])); },
      outage.until * total),
  ];
  const results = await Promise.all(trace.map(async (t) => {
    await h.sleep(Math.max(0, t0 + t.at - Date.now()));
    const start = Date.now();
    let status = 0, provider = '', latency = 0, firstAt = 0;
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}`,
          ...(t.target ? { 'x-tollgate-latency-target-ms': String(t.target) } : {}) },
        body: JSON.stringify(t.body),
      });
      status = res.status;
      provider = res.headers.get('x-tollgate-provider') || '';
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!firstAt && value && Buffer.from(value).toString().includes('data:')) firstAt = Date.now();
      }
      latency = t.stream ? (firstAt || Date.now()) - start : Date.now() - start;
    } catch (e) { status = -1; }
    return { ...t, status, provider, latency };
  }));
  timers.forEach(clearTimeout);
  log('trace done');
  await h.waitForRows(db, trace.length, 'true', 30000);
  const [[pico, unpriced]] = h.psql(db,
    "select coalesce(sum(charge_pico), 0)::text, count(*) filter (where price_card_id is null and http_status = 200) from usage_events");
  log('rows counted');
  await gw.stop();
  log('gateway stopped');
  for (const [n, s] of Object.entries(sims)) { log(`stopping ${n} exit=${s.proc.exitCode} sig=${s.proc.signalCode}`); await s.stop(); }
  if (process.env.BENCH_DEBUG) for (const r of results) log(`len ${r.len} stream ${r.stream} target ${r.target} -> ${r.status} ${r.provider} ${r.latency} ms`);
  const targets = results.filter((r) => r.target);
  const per = {};
  for (const r of results) per[r.provider || '-'] = (per[r.provider || '-'] || 0) + 1;
  const over = results.filter((r) => r.len > 65536);
  return {
    policy, charge: BigInt(pico), unpriced: Number(unpriced),
    met: targets.filter((r) => r.status === 200 && r.latency <= r.target).length, targets: targets.length,
    errors: results.filter((r) => r.status !== 200).length,
    overOk: over.filter((r) => r.status === 200 && r.provider !== 'cheap').length, over: over.length, per,
  };
}

const fmt = (pico) => { const s = pico.toString().padStart(13, '0'); return `${s.slice(0, -12)}.${s.slice(-12, -6)}`; };
console.log(`trace: ${trace.length} requests every ${opt.intervalMs} ms; ${trace.filter((t) => t.stream).length} streamed; ` +
  `${trace.filter((t) => t.target).length} with a latency target; ${trace.filter((t) => t.len > 65536).length} over 64K tokens; ` +
  `cheap down from ${outage.from * 100}% to ${outage.until * 100}%; cheap ${window.percentOff}% off from ${window.from * 100}% to ${window.until * 100}%`);
const rows = [];
for (const p of opt.policies) {
  try { rows.push(await runPolicy(p)); } finally { await h.cleanup(); }
  const r = rows.at(-1);
  console.log(`${p}: charge ${fmt(r.charge)} USD, targets met ${r.met}/${r.targets}, client errors ${r.errors}, ` +
    `over-64K served ${r.overOk}/${r.over}, unpriced ${r.unpriced}, per provider ${JSON.stringify(r.per)}`);
}
const base = rows.find((r) => r.policy === 'cheapest');
console.log('\n| policy | total charge (USD) | vs Tollgate | latency targets met | client errors | over-64K served | requests cheap/fast/big |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = base && base.charge > 0n ? (Number(r.charge * 1000n / base.charge) / 1000).toFixed(3) : '-';
  console.log(`| ${r.policy === 'cheapest' ? 'Tollgate (cheapest meeting needs)' : r.policy} | ${fmt(r.charge)} | ${ratio}x | ` +
    `${r.met}/${r.targets} (${(100 * r.met / Math.max(1, r.targets)).toFixed(0)}%) | ${r.errors} | ${r.overOk}/${r.over} | ` +
    `${r.per.cheap || 0}/${r.per.fast || 0}/${r.per.big || 0} |`);
}
