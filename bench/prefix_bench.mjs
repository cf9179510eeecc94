// Driver of bench/prefix.sh: replays one synthetic trace with shared
// prefixes through tollgate with the prefix index on and off (fresh
// database, simulators, gateway and Redis namespace per mode, all modes at
// once; the same trace) and prints a table. Uses the integration-test harness.
import { execFileSync } from 'node:child_process';
import * as h from '../tests/integration/lib/harness.mjs';
import { seededText } from './trace.mjs';

const opt = { conversations: 24, turns: 6, concurrency: 4, modes: ['on', 'off', 'ordered'] };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--conversations') opt.conversations = Number(v);
  else if (k === '--turns') opt.turns = Number(v);
  else if (k === '--concurrency') opt.concurrency = Number(v);
  else if (k === '--modes') opt.modes = v.split(',');
}
h.requireEnv();
const tokDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;

// ---- the trace (deterministic) -------------------------------------------
const { rand, between, words } = seededText(11);
// four long system prompts (about 1,000 to 3,000 tokens) shared by the conversations
const systems = [700, 1200, 1800, 2400].map((n, i) => `Assistant profile ${i}. ` + words(n));
// documents that one-off questions are asked about (shared prefixes without a conversation)
const docs = [0, 1].map((i) => `Document ${i}. ` + words(2500));
// each conversation: a system prompt and its user turns (its answers come from the simulator)
const convs = Array.from({ length: opt.conversations }, (_, c) => ({
  system: systems[c % systems.length],
  turns: Array.from({ length: opt.turns }, () => words(between(30, 250))),
}));
// per wave (turn), one-off questions on the documents
const oneOffs = Array.from({ length: opt.turns }, () => Array.from({ length: 4 }, (_, i) => ({
  messages: [{ role: 'system', content: docs[i % 2] }, { role: 'user', content: `Question: ${words(between(10, 40))}` }],
})));

const providers = ['p1', 'p2', 'p3'];
const prices = ['0.028', '0.28', '0.42']; // DeepSeek V3.2: hit / miss / output per 1M, equal everywhere

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 0; };
// upper bound of the bucket holding quantile q of a Prometheus histogram
function histQuantile(text, name, q) {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1], Number(m[2])]);
  const total = buckets.at(-1)?.[1] || 0;
  for (const [le, n] of buckets) if (n >= q * total) return le === '+Inf' ? Infinity : Number(le);
  return NaN;
}
const metric = (text, name) => Number((text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} ([0-9.e+-]+)`, 'm')) || [0, NaN])[1]);

async function runMode(mode) {
  const db = h.createDatabase();
  const key = h.createKey(db, 'bench');
  for (const p of providers)
    h.ctl(db, 'price', 'add', '--provider', p, '--model', 'deepseek-chat', '--currency', 'USD', '--hit', prices[0],
      '--miss', prices[1], '--output', prices[2], '--from', '2020-01-01T00:00:00Z');
  const sims = {};
  for (const p of providers)
    sims[p] = await h.startSim('--name', p, '--tokenizer', tokDir, '--completion-tokens', '48', '--context', '0');
  const ns = `bench${Date.now()}${mode}`;
  const conf = h.gatewayConfig({
    conninfo: db,
    gateway: `route_policy = ${mode === 'ordered' ? 'ordered' : 'cheapest'}\nlog_level = ${process.env.BENCH_DEBUG ? 'warn' : 'error'}\n` +
      `redis = ${process.env.TG_REDIS_URL}\nredis_namespace = ${ns}\nprefix_index = ${mode === 'on' ? 'on' : 'off'}\n` +
      'max_body_bytes = 8388608\n',
    providers: providers.map((p) => ({ name: p, url: sims[p].url, kind: 'deepseek', firstByteMs: 10000, idleMs: 10000,
      extra: 'max_connections = 64\n' })),
    models: { chat: providers.map((p) => [p, 'deepseek-chat', 131072]) },
  }).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokDir}\n`);
  const gw = await h.startGateway(conf);
  const latencies = [];
  const per = {};
  let errors = 0;
  const send = async (messages) => {
    const t0 = process.hrtime.bigint();
    const r = await h.post(gw, '/v1/chat/completions', key, { model: 'chat', messages, max_tokens: 48 });
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 200) { errors++; return null; }
    const p = r.headers.get('x-tollgate-provider');
    per[p] = (per[p] || 0) + 1;
    return r.json.choices[0].message.content;
  };
  const history = convs.map((c) => [{ role: 'system', content: c.system }]);
  for (let turn = 0; turn < opt.turns; turn++) {
    // this wave: every conversation's next turn and the one-off questions, interleaved
    const jobs = [];
    convs.forEach((c, i) => jobs.push(async () => {
      history[i].push({ role: 'user', content: c.turns[turn] });
      const answer = await send(history[i]);
      history[i].push({ role: 'assistant', content: answer ?? '' });
    }));
    for (const o of oneOffs[turn]) jobs.push(() => send(o.messages));
    let next = 0;
    await Promise.all(Array.from({ length: opt.concurrency }, async () => {
      while (next < jobs.length) await jobs[next++]();
    }));
  }
  const n = latencies.length;
  await h.waitForRows(db, n, 'true', 30000);
  const [[input, hit, prompt, exact, predicted]] = h.psql(db,
    `select coalesce(sum(cost_cache_hit_pico + cost_cache_miss_pico), 0)::text, sum(cache_hit_tokens), sum(prompt_tokens),
            count(*) filter (where cache_hit_predicted_tokens = cache_hit_tokens), count(cache_hit_predicted_tokens)
       from usage_events`);
  const m = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const stats = execFileSync('redis-cli', ['-u', process.env.TG_REDIS_URL, 'INFO', 'commandstats'], { encoding: 'utf8' });
  const evalsha = stats.match(/cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([0-9.]+)/);
  await gw.stop();
  return {
    mode, requests: n, errors, input: BigInt(input), hit: Number(hit), prompt: Number(prompt), per,
    p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), mean: latencies.reduce((a, b) => a + b, 0) / n,
    exact: Number(exact), predicted: Number(predicted),
    lookups: metric(m, 'tollgate_prefix_lookup_seconds_count'),
    lookupMean: metric(m, 'tollgate_prefix_lookup_seconds_sum') / metric(m, 'tollgate_prefix_lookup_seconds_count') * 1e3,
    lookupP50: histQuantile(m, 'tollgate_prefix_lookup_seconds', 0.5) * 1e3,
    lookupP99: histQuantile(m, 'tollgate_prefix_lookup_seconds', 0.99) * 1e3,
    evalshaUs: evalsha ? Number(evalsha[3]) : NaN,
    outcomes: ['hit', 'miss', 'short', 'bypass_down', 'bypass_timeout', 'bypass_error']
      .map((o) => `${o} ${metric(m, `tollgate_prefix_lookups_total{outcome="${o}"}`)}`).join(', '),
    logs: gw.logs(),
  };
}

const fmt = (pico) => { const s = pico.toString().padStart(13, '0'); return `${s.slice(0, -12)}.${s.slice(-12, -6)}`; };
const total = opt.conversations * opt.turns + 4 * opt.turns;
console.log(`trace: ${opt.conversations} conversations x ${opt.turns} turns over ${systems.length} shared system prompts ` +
  `+ ${4 * opt.turns} one-off questions on ${docs.length} shared documents = ${total} requests, ${opt.concurrency} at a time; ` +
  `3 simulators at equal prices (${prices.join(' / ')} USD per 1M hit / miss / output)`);
// The modes run at the same time, each with its own database, simulators,
// gateway and Redis namespace: the shared machine's load (other jobs) then
// weighs on all of them alike, so their latencies can be compared.
let rows;
try { rows = await Promise.all(opt.modes.map(runMode)); } finally { await h.cleanup(); }
for (const r of rows) {
  const mode = r.mode;
  console.log(`${mode}: input ${fmt(r.input)} USD, hit ${r.hit}/${r.prompt} tokens, errors ${r.errors}, per provider ` +
    `${JSON.stringify(r.per)}, e2e p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms` +
    (r.lookups ? `, lookups ${r.lookups} mean ${r.lookupMean.toFixed(3)} ms p50 <= ${r.lookupP50} ms p99 <= ${r.lookupP99} ms, ` +
      `predicted = reported on ${r.exact}/${r.predicted} rows, Redis EVALSHA ${r.evalshaUs} us/call; lookups: ${r.outcomes}` : ''));
  if (process.env.BENCH_DEBUG) console.log(r.logs.slice(-3000));
}
const base = rows.find((r) => r.mode === 'off');
console.log('\n| mode | input cost (USD) | vs index off | hit share of prompt tokens | requests p1/p2/p3 | e2e p50 ms | e2e p99 ms | lookup p50 / p99 (bucket bound, ms) | client errors |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = base && base.input > 0n ? (Number(r.input * 10000n / base.input) / 10000).toFixed(3) : '-';
  const name = r.mode === 'on' ? 'prefix index on (cheapest)' : r.mode === 'off' ? 'index off (cheapest)' : 'index off (ordered)';
  console.log(`| ${name} | ${fmt(r.input)} | ${ratio}x | ${(100 * r.hit / r.prompt).toFixed(1)}% | ` +
    `${r.per.p1 || 0}/${r.per.p2 || 0}/${r.per.p3 || 0} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ` +
    `${r.lookups ? `${r.lookupP50} / ${r.lookupP99}` : '-'} | ${r.errors} |`);
}
