// The official openai npm client, which nobody here wrote, pointed at the
// gateway: a non-streamed call, a streamed call with include_usage, and an
// error case. The usage row carries the provider's token counts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as h from './lib/harness.mjs';

const require = createRequire(process.env.NODE_PATH + '/');
const OpenAI = require('openai').default ?? require('openai');

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'epsilon');
const sim = await h.startSim('--completion-tokens', '6');
const gw = await h.startGateway(h.gatewayConfig({ conninfo: db, providers: [{ name: 'sim', url: sim.url, kind: 'deepseek' }],
  models: { 'deepseek-chat': [['sim']] } }));
const client = new OpenAI({ apiKey: key, baseURL: gw.url + '/v1', maxRetries: 0 });

test('non-streamed chat completion through the official client', async () => {
  const r = await client.chat.completions.create({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'Hi!' }] });
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.usage.completion_tokens, 6);
});

test('streamed chat with include_usage through the official client; usage row matches', async () => {
  const stream = await client.chat.completions.create({
    model: 'deepseek-chat', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me a story.' }],
  }).withResponse();
  const id = stream.response.headers.get('x-request-id');
  let text = '', usage = null;
  for await (const chunk of stream.data) {
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(text.length > 0);
  assert.ok(usage && usage.completion_tokens === 6 && usage.prompt_tokens > 0);
  const [row] = await h.waitForRows(db, 1, `request_id = '${id}'`);
  assert.equal(Number(row.prompt_tokens), usage.prompt_tokens);
  assert.equal(Number(row.completion_tokens), usage.completion_tokens);
  assert.equal(Number(row.cache_hit_tokens), usage.prompt_cache_hit_tokens);
  assert.equal(row.streamed, true);
  assert.equal(row.usage_complete, true);
});

test('errors surface as the client library\'s typed errors', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 404 && e.code === 'model_not_found');
  const bad = new OpenAI({ apiKey: 'tg-wrong', baseURL: gw.url + '/v1', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'deepseek-chat', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 401 && e instanceof OpenAI.AuthenticationError);
});
