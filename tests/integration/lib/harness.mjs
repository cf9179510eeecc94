// Integration test harness: a fresh database per test file (on the PostgreSQL
// started by scripts/services), real tollgatectl, real provider simulators and
// a real tollgate process. Everything is torn down at the end, even on failure.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const BIN = {
  tollgate: process.env.TOLLGATE_BIN,
  ctl: process.env.TOLLGATECTL_BIN,
  sim: process.env.SIM_BIN,
};

// Spawns a child that dies with this process, even when it is killed with
// SIGKILL (a test timeout) and no cleanup runs: setpriv (util-linux) sets the
// child's parent-death signal before it execs the binary (same pid).
const SETPRIV = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : null;
export function spawnChild(bin, args, options) {
  return SETPRIV ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args], options) : spawn(bin, args, options);
}

const cleanups = [];
export function onCleanup(fn) { cleanups.push(fn); }
// Runs every cleanup (last registered first); then fails if any of them
// failed, e.g. a gateway that did not exit cleanly (a sanitizer report).
export async function cleanup() {
  const errors = [];
  while (cleanups.length) {
    try { await cleanups.pop()(); } catch (e) { errors.push(e); console.error('cleanup:', e.message); }
  }
  if (errors.length) throw errors[0];
}

export function requireEnv() {
  for (const [k, v] of Object.entries(BIN)) if (!v) throw new Error(`binary path for ${k} not set`);
  if (!process.env.TG_PG_ADMIN_CONNINFO)
    throw new Error('TG_PG_ADMIN_CONNINFO is not set: run the suite through scripts/test');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs = 10000, stepMs = 25) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(stepMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last && last.message ? last.message : last})`);
}

export function psql(conninfo, sql) {
  const out = execFileSync('psql', [conninfo, '-X', '-At', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.length).map((l) => l.split('\t'));
}

// Creates an empty database owned by the tollgate role, migrated with
// tollgatectl; dropped at cleanup. Returns its conninfo.
export function createDatabase() {
  const admin = process.env.TG_PG_ADMIN_CONNINFO;
  const name = 'tg_it_' + randomBytes(6).toString('hex');
  psql(admin, `create database ${name} owner tollgate`);
  const conninfo = process.env.TG_PG_CONNINFO.replace(/dbname=\S+/, `dbname=${name}`);
  onCleanup(() => psql(admin, `drop database if exists ${name} with (force)`));
  ctl(conninfo, 'migrate');
  return conninfo;
}

export function ctl(conninfo, ...args) {
  return execFileSync(BIN.ctl, ['--db', conninfo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// Creates a team and a key; returns the clear key.
export function createKey(conninfo, team, ...keyArgs) {
  try { ctl(conninfo, 'team', 'create', team); } catch (e) {
    if (!String(e.stderr).includes('exists')) throw e;
  }
  return ctl(conninfo, 'key', 'create', '--team', team, ...keyArgs).trim();
}

// Spawns a process whose first stdout line is "listening on HOST:PORT".
function spawnListening(bin, args, name) {
  return new Promise((resolve, reject) => {
    const proc = spawnChild(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 10000);
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on \[?([^\]\s]+?)\]?:(\d+)/);
      if (m) { clearTimeout(timer); resolve({ proc, port: Number(m[2]), logs: () => err }); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}: ${err}`)); });
  });
}

export async function startSim(...args) {
  const sim = await spawnListening(BIN.sim, ['--listen', '127.0.0.1:0', ...args], 'tollgate-sim');
  sim.proc.removeAllListeners('exit');
  sim.url = `http://127.0.0.1:${sim.port}`;
  sim.stats = async () => (await fetch(`${sim.url}/sim/stats`)).json();
  sim.stop = () => new Promise((r) => { if (sim.proc.exitCode !== null) return r(); sim.proc.on('exit', r); sim.proc.kill('SIGKILL'); });
  onCleanup(sim.stop);
  return sim;
}

// Writes a config from `text` (@SPOOL@ becomes a spool folder private to this
// gateway) and starts tollgate on free ports. Resolves once the port file
// exists.
export async function startGateway(text, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tg-gw-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'tollgate.conf');
  const portFile = join(dir, 'ports');
  writeFileSync(conf, text.replaceAll('@SPOOL@', join(dir, 'spool')));
  const proc = spawnChild(BIN.tollgate, ['--config', conf, '--port-file', portFile],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let logs = '';
  proc.stderr.on('data', (d) => { logs += d; });
  proc.stdout.on('data', (d) => { logs += d; });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const gw = { proc, logs: () => logs, exited, dir };
  gw.stop = async (sig = 'SIGTERM') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    return exited;
  };
  // At the end the gateway is stopped gracefully and must exit 0: under the
  // sanitizer build a leak or memory error makes the test fail here.
  onCleanup(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    const { code, sig } = await exited;
    clearTimeout(t);
    if (code !== 0) throw new Error(`tollgate exited with ${code ?? sig} at cleanup:\n${logs.slice(-4000)}`);
  });
  await waitFor('gateway port file', async () => {
    if (proc.exitCode !== null) throw new Error(`tollgate exited ${proc.exitCode}: ${logs}`);
    return existsSync(portFile) && readFileSync(portFile, 'utf8').split('\n').length >= 3;
  }, 15000);
  const [port, admin] = readFileSync(portFile, 'utf8').trim().split('\n').map(Number);
  gw.port = port;
  gw.adminPort = admin;
  gw.url = `http://127.0.0.1:${port}`;
  gw.adminUrl = `http://127.0.0.1:${admin}`;
  return gw;
}

// A typical config: every provider is a simulator started by the test.
// providers: [{name, url, kind?, extra?}]; models: {name: [[provider, upstream, context]]}
export function gatewayConfig({ conninfo, providers, models, gateway = '' }) {
  let s = `[gateway]\nlisten = 127.0.0.1:0\nadmin_listen = 127.0.0.1:0\nworkers = 2\n` +
    `postgres = ${conninfo}\nadmin_token = none\nusage_flush_ms = 10\nshutdown_grace_ms = 5000\n` +
    `spool_dir = @SPOOL@\n${gateway}\n`;
  for (const p of providers) {
    s += `[provider ${p.name}]\nkind = ${p.kind || 'openai'}\nbase_url = ${p.url}/v1\n` +
      `api_key = ${p.apiKey || 'none'}\nfirst_byte_timeout_ms = ${p.firstByteMs || 5000}\n` +
      `idle_timeout_ms = ${p.idleMs || 5000}\n${p.extra || ''}\n`;
  }
  for (const [name, routes] of Object.entries(models)) {
    s += `[model ${name}]\n`;
    for (const [prov, upstream, context] of routes)
      s += `provider = ${prov} upstream=${upstream || name} context=${context || 65536}\n`;
  }
  return s;
}

export function chatBody(extra = {}) {
  return { model: 'chat', messages: [{ role: 'user', content: 'Hello there, how are you?' }], ...extra };
}

// True for a failure to reach the server at all (no response): e.g. a pooled
// keep-alive connection that the gateway closed while idle, just as it was reused.
function isConnectionReset(e) {
  const c = e && e.cause;
  return e instanceof TypeError && c && (c.code === 'ECONNRESET' || c.code === 'UND_ERR_SOCKET' || c.code === 'EPIPE');
}

export async function post(gw, path, key, body, headers = {}) {
  const init = {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}), ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  };
  let res;
  try {
    res = await fetch(gw.url + path, init);
  } catch (e) {
    // The gateway closes idle client connections after client_timeout_ms; a
    // request racing that close never reached it. Retried once, as clients do.
    if (!isConnectionReset(e)) throw e;
    res = await fetch(gw.url + path, init);
  }
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* SSE or garbage */ }
  return { status: res.status, headers: res.headers, text, json };
}

// Parses an SSE body into the JSON payloads of its data: lines ([DONE] kept as a string).
export function sseEvents(text) {
  return text.split('\n\n').filter((e) => e.trim()).map((e) => {
    const data = e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
    return data === '[DONE]' ? data : JSON.parse(data);
  });
}

export async function usageRows(conninfo, where = 'true') {
  return psql(conninfo, `select row_to_json(u) from usage_events u where ${where} order by received_at`)
    .map((r) => JSON.parse(r[0]));
}

// Waits until the usage table holds `n` rows matching `where`.
export async function waitForRows(conninfo, n, where = 'true', timeoutMs = 10000) {
  await waitFor(`${n} usage rows where ${where}`, async () =>
    Number(psql(conninfo, `select count(*) from usage_events where ${where}`)[0][0]) >= n, timeoutMs);
  return usageRows(conninfo, where);
}

// A client of the gateway's admin listener with its bearer token: calls
// resolve to {status, json (null when the body is not JSON), text, headers}.
// body: an object (sent as JSON), a string (sent as is) or undefined.
export function adminClient(gw, token) {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(gw.adminUrl + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text, headers: res.headers };
  };
}
