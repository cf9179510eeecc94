// Prompt token counts before forwarding: exact with the model's tokenizer (the
// DeepSeek V3 tokenizer fetched by scripts/setup), an estimate without one,
// marked as such; exact counts skip providers whose context window is too
// small, and a prompt no provider can hold is refused before any is called.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const tokenizerDir = `${process.env.TG_SOURCE_ROOT}/data/tokenizers/deepseek-v3`;
const db = h.createDatabase();
const key = h.createKey(db, 'zeta');
const small = await h.startSim('--name', 'small');
const large = await h.startSim('--name', 'large');
const conf = h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'small', url: small.url }, { name: 'large', url: large.url }],
  models: { chat: [['small', 'x', 60], ['large', 'x', 100000]], tiny: [['small', 'x', 20]], guess: [['small', 'x', 5]] },
}).replace('[model chat]\n', `[model chat]\ntokenizer = ${tokenizerDir}\n`)
  .replace('[model tiny]\n', `[model tiny]\ntokenizer = ${tokenizerDir}\n`);
const gw = await h.startGateway(conf);

function countWithCli(text) {
  return Number(execFileSync(h.BIN.ctl, ['tokens', 'count', '--tokenizer', tokenizerDir], { input: text, encoding: 'utf8' }).trim());
}

test('completions: the exact count equals tollgatectl tokens count of the prompt', async () => {
  const prompt = 'Tollgate counts tokens exactly: 你好，世界! 12345 🙂';
  const r = await h.post(gw, '/v1/completions', key, { model: 'chat', prompt });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-tollgate-prompt-tokens-source'), 'tokenizer');
  assert.equal(Number(r.headers.get('x-tollgate-prompt-tokens')), countWithCli(prompt));
});

test('chat: a short prompt goes to the first provider, a long one skips the small window', async () => {
  const short = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ max_tokens: 5 }));
  assert.equal(short.headers.get('x-tollgate-provider'), 'small');
  const n = Number(short.headers.get('x-tollgate-prompt-tokens'));
  assert.ok(n > 5 && n < 40, `template + message: ${n}`);
  const long = await h.post(gw, '/v1/chat/completions', key,
    h.chatBody({ messages: [{ role: 'user', content: 'word '.repeat(200) }] }));
  assert.equal(long.status, 200);
  assert.equal(long.headers.get('x-tollgate-provider'), 'large');
  assert.equal(long.headers.get('x-tollgate-attempts'), '1', 'the small provider was never tried');
  const smallStats = await small.stats();
  assert.equal(smallStats.requests.by_endpoint.chat_completions, 1);
});

test('max_tokens counts against the window too', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ max_tokens: 1000 }));
  assert.equal(r.headers.get('x-tollgate-provider'), 'large');
});

test('a prompt no provider can hold: 400 context_length_exceeded, nothing forwarded', async () => {
  const before = (await small.stats()).requests.by_endpoint.chat_completions;
  const r = await h.post(gw, '/v1/chat/completions', key,
    h.chatBody({ model: 'tiny', messages: [{ role: 'user', content: 'word '.repeat(50) }] }));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.equal(r.json.error.param, 'messages');
  assert.match(r.json.error.message, /maximum context length is 20 tokens/);
  assert.equal((await small.stats()).requests.by_endpoint.chat_completions, before);
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.http_status, 400);
  assert.equal(row.attempts, 0);
});

test('without a tokenizer: an estimate, marked as one, that never drops a provider', async () => {
  const r = await h.post(gw, '/v1/chat/completions', key,
    h.chatBody({ model: 'guess', messages: [{ role: 'user', content: 'word '.repeat(50) }] }));
  assert.equal(r.status, 200, 'context 5 < estimate, but estimates do not filter');
  assert.equal(r.headers.get('x-tollgate-prompt-tokens-source'), 'estimate');
  assert.equal(Number(r.headers.get('x-tollgate-prompt-tokens')), Math.ceil(250 / 4) + 4);
});
