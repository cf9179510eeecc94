// The in-house engine as a provider behind the real gateway: a
// `tollgate-engine serve` process (demo-tiny random model, DeepSeek V3
// tokenizer) is a `kind = engine` provider; chat requests through the
// gateway, streamed and not, are answered by it; the usage rows in
// PostgreSQL carry the engine's prompt, completion and cache-hit counts; a
// repeated long prompt shows cache hits in whole 64-token blocks.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const root = process.env.TG_SOURCE_ROOT;
const engineBin = process.env.ENGINE_BIN;
const tokDir = join(root, 'data', 'tokenizers', 'deepseek-v3');
assert.ok(existsSync(engineBin), `the engine binary is missing at ${engineBin}`);
assert.ok(existsSync(join(tokDir, 'tokenizer.json')),
  `the DeepSeek V3 tokenizer is missing in ${tokDir}: scripts/setup fetches it`);

// Starts the engine on a free port; stopped with SIGTERM at cleanup, and it
// must exit 0 (under the sanitizer build: no leak, no memory error).
async function startEngine() {
  const proc = h.spawnChild(engineBin, ['serve', '--random-init', join(root, 'engine', 'configs', 'demo-tiny.json'),
    '--tokenizer', tokDir, '--listen', '127.0.0.1:0', '--name', 'tollgate-tiny', '--threads', '1'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`engine did not start: ${err}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on .*:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`engine exited ${code}: ${err}`)); });
  });
  h.onCleanup(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    const { code, sig } = await exited;
    clearTimeout(t);
    if (code !== 0) throw new Error(`tollgate-engine exited with ${code ?? sig}:\n${err.slice(-4000)}`);
  });
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

const db = h.createDatabase();
const key = h.createKey(db, 'alpha');
const engine = await startEngine();
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'engine', url: engine.url, kind: 'engine', firstByteMs: 30000, idleMs: 30000 }],
  models: { 'tollgate-tiny': [['engine', 'tollgate-tiny', 4096]] },
}));

const chat = (content, extra = {}) => ({
  model: 'tollgate-tiny', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 8, ...extra,
});

async function metric(name) {
  const text = await (await fetch(engine.url + '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

let greedyText;

test('non-streamed chat through the gateway is answered by the engine', async () => {
  const before = await metric('tollgate_engine_requests_total{endpoint="chat.completions",outcome="ok"}');
  const r = await h.post(gw, '/v1/chat/completions', key, chat('Hello there, how are you?'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.object, 'chat.completion');
  assert.equal(r.json.system_fingerprint, 'tollgate-engine');
  assert.equal(r.headers.get('x-tollgate-provider'), 'engine');
  greedyText = r.json.choices[0].message.content;
  assert.ok(greedyText.length > 0);
  const u = r.json.usage;
  assert.ok(u.prompt_tokens > 5);
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 8);
  assert.equal(u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens, u.prompt_tokens);
  assert.equal(await metric('tollgate_engine_requests_total{endpoint="chat.completions",outcome="ok"}'), before + 1);
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.provider, 'engine');
  assert.equal(row.upstream_model, 'tollgate-tiny');
  assert.equal(row.streamed, false);
  assert.equal(row.http_status, 200);
  assert.equal(Number(row.prompt_tokens), u.prompt_tokens);
  assert.equal(Number(row.completion_tokens), u.completion_tokens);
  assert.equal(Number(row.cache_hit_tokens), 0);
  assert.equal(Number(row.cache_miss_tokens), u.prompt_tokens);
  assert.equal(row.usage_complete, true);
});

test('streamed chat through the gateway: same text as not streamed, usage in the row', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key,
    chat('Hello there, how are you?', { stream: true, stream_options: { include_usage: true } }));
  assert.equal(r.status, 200, r.text);
  const events = h.sseEvents(r.text);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1);
  const text = chunks.map((c) => c.choices[0]?.delta?.content || '').join('');
  assert.equal(text, greedyText, 'greedy: the stream carries the same text');
  const usage = chunks.at(-1).usage;
  assert.ok(usage && usage.completion_tokens >= 1, JSON.stringify(chunks.at(-1)));
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.streamed, true);
  assert.equal(Number(row.prompt_tokens), usage.prompt_tokens);
  assert.equal(Number(row.completion_tokens), usage.completion_tokens);
  assert.equal(row.usage_complete, true);
});

test('a repeated long prompt is served from the engine cache and the row shows the hits', async () => {
  const long = 'The gateway meters every request, prices it and routes it by cost. '.repeat(30);
  const cold = await h.post(gw, '/v1/chat/completions', key, chat(long));
  assert.equal(cold.status, 200, cold.text);
  const warm = await h.post(gw, '/v1/chat/completions', key, chat(long, { stream: true }));
  assert.equal(warm.status, 200, warm.text);
  const pt = cold.json.usage.prompt_tokens;
  assert.ok(pt > 256, `a long prompt (${pt} tokens)`);
  const warmText = h.sseEvents(warm.text).slice(0, -1).map((c) => c.choices[0]?.delta?.content || '').join('');
  assert.equal(warmText, cold.json.choices[0].message.content, 'warm run = cold run (greedy)');
  const [c] = await h.waitForRows(db, 1, `request_id = '${cold.headers.get('x-request-id')}'`);
  const [w] = await h.waitForRows(db, 1, `request_id = '${warm.headers.get('x-request-id')}'`);
  assert.equal(Number(c.cache_hit_tokens), 0);
  assert.equal(Number(w.prompt_tokens), pt);
  assert.equal(Number(w.cache_hit_tokens), Math.floor((pt - 1) / 64) * 64, 'whole 64-token blocks');
  assert.equal(Number(w.cache_miss_tokens), pt - Number(w.cache_hit_tokens));
  assert.equal(Number(w.completion_tokens), Number(c.completion_tokens));
});

test('a bad request is the engine\'s OpenAI error, relayed', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, chat('hi', { temperature: 5 }));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.param, 'temperature');
});
