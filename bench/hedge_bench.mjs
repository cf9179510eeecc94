// Driver of bench/hedge.sh: replays one trace through tollgate with hedging
// off and on (fresh database, simulators and gateway per mode; same trace,
// same schedule, same seeded slow tail) and prints a table. Uses the
// integration-test harness for processes and the database. Money is summed
// in PostgreSQL as exact pico-unit integers and printed as decimals.
import * as h from '../tests/integration/lib/harness.mjs';
import { seededText } from './trace.mjs';

const opt = { requests: 300, intervalMs: 80, hedgeAfterMs: 400, routePercentile: 50 };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--requests') opt.requests = Number(v);
  else if (k === '--interval-ms') opt.intervalMs = Number(v);
  else if (k === '--hedge-after-ms') opt.hedgeAfterMs = Number(v);
  else if (k === '--route-percentile') opt.routePercentile = Number(v);
  else { console.error(`unknown argument ${k}`); process.exit(2); }
}
for (const [k, v] of Object.entries(opt))
  if (!Number.isInteger(v) || v < 1) { console.error(`bad --${k}: ${v}`); process.exit(2); }
h.requireEnv();
const tokenizerDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;
const TARGET_MS = 1000;

// ---- the trace (deterministic) -------------------------------------------
const { rand, between, words } = seededText(11);
const trace = [];
for (let i = 0; i < opt.requests; i++) {
  const stream = rand() < 0.5;
  const len = between(50, 1500);
  trace.push({ at: i * opt.intervalMs, stream, len,
    body: { model: 'chat', messages: [{ role: 'user', content: words(len) }], stream, max_tokens: 32 } });
}

// ---- two hosts of one model ------------------------------------------------
// prices per 1M tokens: cache hit, cache miss, output
const providers = [
  { name: 'cheap', ttft: 150, prices: ['0.014', '0.14', '0.28'], sim: ['--seed', '5', '--rate-slow', '0.1', '--slow-ttft-ms', '3000'] },
  { name: 'dear', ttft: 100, prices: ['0.028', '0.28', '0.56'], sim: [] },
];
const TPS = 400, COMPLETION = 32;

const pct = (sorted, p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)] : NaN;

async function runMode(mode, hedgeAfterMs) {
  const log = (m) => process.env.BENCH_DEBUG && console.error(`[${mode}] ${m}`);
  const db = h.createDatabase();
  const key = h.createKey(db, 'bench');
  for (const p of providers)
    h.ctl(db, 'price', 'add', '--provider', p.name, '--model', 'm', '--currency', 'USD', '--hit', p.prices[0],
      '--miss', p.prices[1], '--output', p.prices[2], '--from', '2020-01-01T00:00:00Z');
  const sims = {};
  for (const p of providers)
    sims[p.name] = await h.startSim('--name', p.name, '--ttft-ms', String(p.ttft), '--tokens-per-s', String(TPS),
      '--completion-tokens', String(COMPLETION), ...p.sim);
  // route_percentile = 50 (default): the router judges the hosts by their
  // median TTFT, so the cheap host with its tail stays first in both modes;
  // at the 90th percentile its 10% tail can take it out of the latency target
  // in the mode without hedges (--route-percentile 90 shows it)
  const conf = h.gatewayConfig({
    conninfo: db,
    gateway: `route_percentile = ${opt.routePercentile}\nlog_level = error\nhedge_max_per_minute = 600\n`,
    providers: providers.map((p) => ({ name: p.name, url: sims[p.name].url, kind: 'deepseek', firstByteMs: 10000,
      idleMs: 10000, extra: `expect_ttft_ms = ${p.ttft}\nexpect_tokens_per_s = ${TPS}\nmax_connections = 256\n` })),
    models: { chat: providers.map((p) => [p.name, 'm', 131072]) },
  }).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokenizerDir}\npolicy = cheapest\n` +
    `latency_target_ms = ${TARGET_MS}\nhedge_after_ms = ${hedgeAfterMs}\n`);
  const gw = await h.startGateway(conf);
  log('gateway up');
  const t0 = Date.now() + 300;
  const results = await Promise.all(trace.map(async (t) => {
    await h.sleep(Math.max(0, t0 + t.at - Date.now()));
    const start = performance.now();
    let status = 0, provider = '', hedge = '', latency = 0, firstAt = 0;
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
        body: JSON.stringify(t.body),
      });
      status = res.status;
      provider = res.headers.get('x-tollgate-provider') || '';
      hedge = res.headers.get('x-tollgate-hedge') || '';
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!firstAt && value && Buffer.from(value).toString().includes('data:')) firstAt = performance.now();
      }
      latency = t.stream ? (firstAt || performance.now()) - start : performance.now() - start;
    } catch (e) { status = -1; log(`request failed: ${e.message}`); }
    return { ...t, status, provider, hedge, latency };
  }));
  log('trace done');
  // every request, answered or not, has its usage row (counted, not read: a
  // long trace's rows are more than psql's output buffer)
  await h.waitFor(`${trace.length} usage rows`, async () =>
    Number(h.psql(db, 'select count(*) from usage_events')[0][0]) >= trace.length, 30000);
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const hedges = {};
  for (const m of metrics.matchAll(/^tollgate_hedges_total\{event="(\w+)"\} (\d+)$/gm)) hedges[m[1]] = Number(m[2]);
  for (const e of ['sent', 'won', 'lost', 'took_over', 'failed', 'capped']) hedges[e] ??= 0;
  // one gateway_costs row per cancelled loser (won: the first attempt; lost: the hedge)
  const losers = hedges.won + hedges.lost;
  let costRows = 0;
  try {
    await h.waitFor(`${losers} gateway_costs rows`, async () =>
      (costRows = Number(h.psql(db, 'select count(*) from gateway_costs')[0][0])) >= losers, 15000);
  } catch (e) { console.error(`[${mode}] ${e.message}`); }
  const [[team, teamUnpriced, currencies]] = h.psql(db,
    "select coalesce(sum(charge_pico), 0)::text, count(*) filter (where price_card_id is null and http_status = 200), " +
    "count(distinct charge_currency) from usage_events");
  const [[gwCost, gwUnpriced, gwLoserCheap]] = h.psql(db,
    "select coalesce(sum(charge_pico), 0)::text, count(*) filter (where charge_pico is null), " +
    "count(*) filter (where provider = 'cheap') from gateway_costs");
  // each cost row's charge, recomputed from the price tables alone
  const [[gwDiff]] = h.psql(db, 'select count(*) from gateway_costs_charge_recomputed where charge_pico <> recomputed_pico');
  const slowDraws = (await sims.cheap.stats()).requests.slow;
  await gw.stop();
  if (process.env.BENCH_DEBUG)
    for (const r of results) log(`len ${r.len} stream ${r.stream} -> ${r.status} ${r.provider} ${r.hedge} ${r.latency.toFixed(0)} ms`);
  const ok = results.filter((r) => r.status === 200);
  const lat = ok.map((r) => r.latency).sort((a, b) => a - b);
  const per = {}, hedgeSeen = {};
  for (const r of ok) per[r.provider] = (per[r.provider] || 0) + 1;
  for (const r of ok) if (r.hedge) hedgeSeen[r.hedge] = (hedgeSeen[r.hedge] || 0) + 1;
  return {
    mode, hedgeAfterMs, team: BigInt(team), gw: BigInt(gwCost), unpriced: Number(teamUnpriced) + Number(gwUnpriced),
    currencies: Number(currencies), costRows, losers, gwLoserCheap: Number(gwLoserCheap),
    met: ok.filter((r) => r.latency <= TARGET_MS).length, errors: results.length - ok.length,
    p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), gwDiff: Number(gwDiff),
    p99Stream: pct(ok.filter((r) => r.stream).map((r) => r.latency).sort((a, b) => a - b), 99),
    p99Whole: pct(ok.filter((r) => !r.stream).map((r) => r.latency).sort((a, b) => a - b), 99), hedges, hedgeSeen, per, slowDraws,
  };
}

// pico-units as an exact decimal with all 12 places
const fmt = (pico) => { const s = pico.toString().padStart(13, '0'); return `${s.slice(0, -12)}.${s.slice(-12)}`; };
const ratio = (a, b, places = 3) => {
  if (b === 0n) return '-';
  const k = 10n ** BigInt(places), q = (a * k + b / 2n) / b;
  return `${q / k}.${(q % k).toString().padStart(places, '0')}`;
};
const pctOf = (a, b) => (b === 0n ? '-' : `${ratio(a * 100n, b, 2)}%`);
const ms = (v) => v.toFixed(0);

console.log(`trace: ${trace.length} requests, one every ${opt.intervalMs} ms (open loop), ` +
  `${trace.filter((t) => t.stream).length} streamed; prompts 50-1500 words; max_tokens ${COMPLETION}; ` +
  `latency target ${TARGET_MS} ms on every request (streams: first event; whole answers: all of it)`);
console.log(`cheap: TTFT ${providers[0].ttft} ms, 10% of answers 3000 ms (seeded), ${TPS} tok/s, ` +
  `$${providers[0].prices.join('/')} per 1M hit/miss/output; dear: TTFT ${providers[1].ttft} ms, no tail, ` +
  `$${providers[1].prices.join('/')}; policy cheapest, route_percentile ${opt.routePercentile}`);
const rows = [];
for (const [mode, after] of [['off', 0], ['on', opt.hedgeAfterMs]]) {
  try { rows.push(await runMode(mode, after)); } finally { await h.cleanup(); }
  const r = rows.at(-1);
  console.log(`${mode} (hedge_after_ms ${after}): targets met ${r.met}/${trace.length}, ` +
    `latency p50/p90/p99 ${ms(r.p50)}/${ms(r.p90)}/${ms(r.p99)} ms (p99 streams ${ms(r.p99Stream)}, ` +
    `whole answers ${ms(r.p99Whole)}), team ${fmt(r.team)} USD, ` +
    `gateway ${fmt(r.gw)} USD (${r.costRows} rows, ${r.gwLoserCheap} for cheap), hedges ${JSON.stringify(r.hedges)}, ` +
    `client saw ${JSON.stringify(r.hedgeSeen)}, answered by ${JSON.stringify(r.per)}, slow draws at cheap ${r.slowDraws}, ` +
    `client errors ${r.errors}, unpriced rows ${r.unpriced}, currencies ${r.currencies}, ` +
    `cost rows whose charge differs when recomputed ${r.gwDiff}`);
  if (r.costRows !== r.losers) console.log(`  note: ${r.costRows} gateway_costs rows for ${r.losers} cancelled losers`);
}
console.log('\n| hedging | targets met | latency p50 / p90 / p99 (ms) | team charge (USD) | gateway cost (USD) | ' +
  'gateway / team | hedges sent / won / lost | client errors | answered cheap / dear | slow draws at cheap |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(`| ${r.mode === 'off' ? 'off (peer)' : `on, after ${r.hedgeAfterMs} ms`} | ` +
    `${r.met}/${trace.length} (${(100 * r.met / trace.length).toFixed(1)}%) | ${ms(r.p50)} / ${ms(r.p90)} / ${ms(r.p99)} | ` +
    `${fmt(r.team)} | ${fmt(r.gw)} | ${pctOf(r.gw, r.team)} | ${r.hedges.sent} / ${r.hedges.won} / ${r.hedges.lost} | ` +
    `${r.errors} | ${r.per.cheap || 0} / ${r.per.dear || 0} | ${r.slowDraws} |`);
const [off, on] = rows;
if (off && on) {
  const spendOff = off.team + off.gw, spendOn = on.team + on.gw;
  console.log(`\nratios on/off: p99 latency ${(on.p99 / off.p99).toFixed(3)}, total spend (team + gateway) ` +
    `${ratio(spendOn, spendOff, 4)} (${fmt(spendOn)} / ${fmt(spendOff)} USD), team charge ${ratio(on.team, off.team, 4)}; ` +
    `targets met ${on.met} vs ${off.met}`);
}
