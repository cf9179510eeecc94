// Ledger under crashes: a real gateway with a spool directory serves steady
// load from several clients; it is killed with SIGKILL several times in the
// middle of the load and restarted on the same spool. Then every request
// whose response completed at the client has exactly one usage row, no
// request id has two, and `tollgatectl usage verify --spool` reports zero
// differences. Relies on the gateway submitting the record before the
// response's last byte (gw_proxy.c, exchange_settle).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const ROUNDS = 4;             // gateway lifetimes; the first three end in SIGKILL
const CLIENTS = 6;            // concurrent clients
const ROUND_MS = 1500;        // load per round before the kill
const MAX_PER_ROUND = 400;    // and at most this many requests per round

const db = h.createDatabase();
const key = h.createKey(db, 'crash');
const sim = await h.startSim('--completion-tokens', '8');
const spool = mkdtempSync(join(tmpdir(), 'tg-spool-'));
const conf = h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'sim', url: sim.url }],
  models: { chat: [['sim']] },
  gateway: `spool_dir = ${spool}\nspool_sync = interval\nspool_sync_ms = 50\n`,
});

test('kill -9 under load: every completed response has exactly one row', async () => {
  const completed = new Set();
  let failed = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const gw = await h.startGateway(conf);
    let sent = 0;
    const end = Date.now() + ROUND_MS;
    const client = async (n) => {
      while (Date.now() < end && sent < MAX_PER_ROUND) {
        sent++;
        try {
          const stream = (sent + n) % 2 === 0;
          const res = await fetch(gw.url + '/v1/chat/completions', {
            method: 'POST',
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
            body: JSON.stringify(h.chatBody({ stream, max_tokens: 8 })),
          });
          const id = res.headers.get('x-request-id');
          await res.text(); // the whole response reached the client
          if (res.status === 200 && id) completed.add(id);
        } catch {
          failed++; // cut by the kill: not a completed response
        }
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    if (round < ROUNDS - 1) {
      await h.sleep(ROUND_MS / 2 + Math.floor(Math.random() * ROUND_MS / 3));
      gw.proc.kill('SIGKILL');
      await gw.exited;
      await load;
    } else {
      await load;
      // The last gateway drains everything, then stops cleanly (checked at cleanup).
      await h.waitFor('spool drained into PostgreSQL', async () =>
        Number(h.psql(db, `select count(*) from usage_events`)[0][0]) >= completed.size, 20000);
    }
  }
  assert.ok(completed.size >= 100, `only ${completed.size} completed responses`);
  console.log(`completed responses: ${completed.size}, cut by kills: ${failed}`);
  const ids = [...completed];
  const rows = h.psql(db, `select request_id, count(*) from usage_events
    where request_id = any(array[${ids.map((i) => `'${i}'`).join(',')}]) group by 1`);
  const seen = new Map(rows.map(([id, n]) => [id, Number(n)]));
  const missing = ids.filter((i) => !seen.has(i));
  assert.deepEqual(missing, [], 'completed responses without a row');
  assert.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'rows written twice');
  const [[all, distinct]] = h.psql(db, 'select count(*), count(distinct request_id) from usage_events');
  assert.equal(all, distinct, 'a request id twice in the ledger');
  const now = new Date();
  const from = new Date(now.getTime() - 3600e3).toISOString();
  const to = new Date(now.getTime() + 3600e3).toISOString();
  const out = h.ctl(db, 'usage', 'verify', '--from', from, '--to', to, '--spool', spool);
  assert.match(out, /OK: 0 difference\(s\)/);
});
