// Back-pressure on streams: a client that reads slower than its provider
// writes does not make the gateway buffer the difference. Past
// stream_buffer_bytes queued for the client, the upstream's reading is paused
// (the provider's bytes wait in the kernel, TCP flow control), and it resumes
// once the client has read what was queued; the client then gets the whole
// stream and the row is complete. And a provider silent between events for
// longer than client_timeout_ms does not cut off a client that waits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const db = h.createDatabase();
const key = h.createKey(db, 'readers');
// about 13 MB of events in 2 s
const sim = await h.startSim('--completion-tokens', '60000', '--tokens-per-s', '30000');
const gateway = (bytes) => h.startGateway(h.gatewayConfig({
  conninfo: db, gateway: `stream_buffer_bytes = ${bytes}\n`, providers: [{ name: 'sim', url: sim.url }], models: { chat: [['sim']] },
}));
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
// ASan's allocator keeps freed memory in quarantine: its RSS says nothing about live bytes
const sanitized = (pid) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libasan');
const metric = async (gw, name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${gw.adminUrl}/metrics`)).text())[1]);

// Sends a streamed request on a raw socket and stops reading after the first
// bytes; returns the socket, a promise of everything it will have read, and
// a way to start reading again.
function slowReader(gw, body) {
  const sock = net.connect(gw.port, '127.0.0.1');
  const chunks = [];
  let first = true;
  sock.on('data', (d) => { chunks.push(d); if (first) { first = false; sock.pause(); } });
  const all = new Promise((resolve, reject) => { sock.on('end', () => resolve(Buffer.concat(chunks).toString())); sock.on('error', reject); });
  const text = JSON.stringify(body);
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  return { sock, all, resume: () => sock.resume() };
}

for (const [limit, paused] of [[65536, true], [256 << 20, false]]) {
  test(`a client that stops reading (stream_buffer_bytes ${limit}): upstream ${paused ? 'paused' : 'not paused'}, whole stream after`, async (t) => {
    const gw = await gateway(limit);
    await h.post(gw, '/v1/chat/completions', key, h.chatBody({ max_tokens: 4 })); // warm: pools, threads
    const before = rssKb(gw.proc.pid);
    const r = slowReader(gw, h.chatBody({ stream: true }));
    await h.sleep(2500); // the simulator has sent everything by now
    const grown = rssKb(gw.proc.pid) - before;
    assert.equal(await metric(gw, 'tollgate_streams_paused'), paused ? 1 : 0);
    if (sanitized(gw.proc.pid)) {
      t.diagnostic(`RSS bound not checked under ASan (grew ${grown} KB): its allocator quarantines freed memory`);
    } else if (paused) {
      assert.ok(grown < 4096, `the gateway grew ${grown} KB holding a 13 MB stream for a client that does not read`);
    } else {
      assert.ok(grown > 8192, `without the bound the stream waits in the gateway (grew ${grown} KB): the peer of the check above`);
    }
    r.resume();
    const text = await r.all;
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.ok(text.includes('data: [DONE]'), 'the whole stream reached the client');
    assert.ok(text.length > 10e6, `${text.length} bytes`);
    const id = /^x-request-id: (\S+)\r$/mi.exec(text)[1];
    const [row] = await h.waitForRows(db, 1, `request_id = '${id}'`);
    assert.equal(row.http_status, 200);
    assert.equal(row.usage_complete, true);
    assert.equal(Number(row.completion_tokens), 60000);
    assert.equal(await metric(gw, 'tollgate_streams_paused'), 0);
    assert.ok((await metric(gw, 'tollgate_stream_pauses_total')) >= (paused ? 1 : 0));
    if (!paused) assert.equal(await metric(gw, 'tollgate_stream_pauses_total'), 0);
    const { code } = await gw.stop();
    assert.equal(code, 0);
  });
}

test('a stream whose provider is silent longer than client_timeout_ms keeps its client', async () => {
  // one token a second; the client's own timeout is 300 ms, and it only reads
  const quiet = await h.startSim('--completion-tokens', '3', '--tokens-per-s', '1');
  const gw = await h.startGateway(h.gatewayConfig({
    conninfo: db, gateway: 'client_timeout_ms = 300\n', providers: [{ name: 'quiet', url: quiet.url }], models: { chat: [['quiet']] },
  }));
  const r = await h.post(gw, '/v1/chat/completions', key, h.chatBody({ stream: true }));
  assert.equal(r.status, 200);
  const events = h.sseEvents(r.text);
  assert.equal(events.at(-1), '[DONE]');
  const [row] = await h.waitForRows(db, 1, `request_id = '${r.headers.get('x-request-id')}'`);
  assert.equal(row.http_status, 200);
  assert.equal(row.usage_complete, true);
  assert.equal(Number(row.completion_tokens), 3);
  // the read timeout is back for the next request on the connection: an idle
  // keep-alive connection is still closed after client_timeout_ms
  const sock = net.connect(gw.port, '127.0.0.1');
  const closed = new Promise((resolve) => sock.on('close', resolve));
  await new Promise((resolve) => sock.on('connect', resolve));
  const t0 = Date.now();
  await Promise.race([closed, h.sleep(5000)]);
  assert.ok(sock.destroyed || sock.readyState === 'closed', 'an idle connection was closed');
  assert.ok(Date.now() - t0 < 4000);
  await gw.stop();
});
