// Prices by the instant: with DeepSeek's real history seeded, gateways whose
// clock is set (test_clock, allowed only with TOLLGATE_TEST_CLOCK=1) to
// instants inside and outside the promotion and the 2025 off-peak window
// charge every request exactly what the published prices give.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
h.ctl(db, 'price', 'seed');
const key = h.createKey(db, 'theta');
const sim = await h.startSim('--completion-tokens', '9');

async function gatewayAt(instant) {
  return h.startGateway(h.gatewayConfig({
    conninfo: db,
    providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
    models: { 'deepseek-chat': [['deepseek', 'deepseek-chat']], 'deepseek-reasoner': [['deepseek', 'deepseek-reasoner']] },
    gateway: `test_clock = ${instant}\n`,
  }), { TOLLGATE_TEST_CLOCK: '1' });
}

// Published USD prices per 1M tokens, in micro-units: [hit, miss, output].
const cases = [
  ['2025-01-15T12:00:00Z', 'deepseek-chat', [14000n, 140000n, 280000n], true, 'the V3 launch promotion'],
  ['2025-03-03T12:00:00Z', 'deepseek-chat', [70000n, 270000n, 1100000n], false, 'standard, outside the off-peak window'],
  ['2025-03-03T17:00:00Z', 'deepseek-chat', [35000n, 135000n, 550000n], true, 'off-peak: chat 50% off'],
  ['2025-03-04T00:29:00Z', 'deepseek-chat', [35000n, 135000n, 550000n], true, 'off-peak wraps past midnight'],
  ['2025-03-03T17:00:00Z', 'deepseek-reasoner', [35000n, 135000n, 550000n], true, 'off-peak: reasoner 75% off'],
  ['2025-10-01T12:00:00Z', 'deepseek-chat', [28000n, 280000n, 420000n], false, 'V3.2, no window any more'],
];

for (const [instant, model, prices, windowed, why] of cases) {
  test(`${instant} ${model}: ${why}`, async () => {
    const gw = await gatewayAt(instant);
    const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ model }));
    assert.equal(r.status, 200, r.text);
    const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
    assert.ok(Math.abs(Date.parse(row.completed_at) - Date.parse(instant)) < 60000, row.completed_at);
    assert.equal(row.discount_window_id !== null, windowed, `window: ${row.discount_window_id}`);
    const [hit, miss, out] = prices;
    const expected = BigInt(row.cache_hit_tokens) * hit + BigInt(row.cache_miss_tokens) * miss +
      BigInt(row.completion_tokens) * out;
    assert.equal(BigInt(row.charge_pico), expected);
    assert.equal(row.pricing_flags, 0);
    await gw.stop();
  });
}

test('test_clock is refused without TOLLGATE_TEST_CLOCK=1', async () => {
  await assert.rejects(h.startGateway(h.gatewayConfig({
    conninfo: db, providers: [{ name: 'deepseek', url: sim.url }], models: { x: [['deepseek']] },
    gateway: 'test_clock = 2025-03-03T17:00:00Z\n',
  })), /test_clock is for tests only/);
});
