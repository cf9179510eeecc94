// The team and API-key admin API on the admin listener (docs/keys-admin.md):
// teams created, listed and read; a key created over HTTP (its secret in the
// answer once, never stored, listed or logged) authenticates on the proxy
// listener within the documented second, and a revoked one is refused within
// it; routing and response-cache changes audited with the x-tollgate-actor;
// every kind of bad input refused with an OpenAI-shaped error, a log line and
// nothing saved; the CLI and the API see the same keys.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as h from './lib/harness.mjs';

h.requireEnv();
after(h.cleanup);

const ADMIN_TOKEN = 'keys-admin-token';
const db = h.createDatabase();
h.ctl(db, 'price', 'seed'); // price cards name provider 'deepseek'
const sim = await h.startSim('--completion-tokens', '5');
const gw = await h.startGateway(h.gatewayConfig({
  conninfo: db,
  providers: [{ name: 'deepseek', url: sim.url, kind: 'deepseek' }],
  models: { chat: [['deepseek', 'deepseek-chat']], other: [['deepseek', 'deepseek-chat']] },
}).replace('admin_token = none', 'admin_token = env:TG_TEST_ADMIN_TOKEN'), { TG_TEST_ADMIN_TOKEN: ADMIN_TOKEN });

const admin = h.adminClient(gw, ADMIN_TOKEN);
const get = (path) => admin('GET', path);
const write = (method, path, body, actor = 'alice') =>
  admin(method, path, body, actor ? { 'x-tollgate-actor': actor } : {});

const count = (table) => Number(h.psql(db, `select count(*) from ${table}`)[0][0]);
const audits = (where) => h.psql(db, `select actor, action, object, coalesce(before::text, ''), coalesce(after::text, '') from audit_log where ${where} order by id`);

// An OpenAI-shaped error with the expected status and code, its message
// matching re (the API capitalizes the first letter); returns it.
function refused(r, status, code, re, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
  assert.ok('type' in r.json.error && 'param' in r.json.error, r.text);
  if (code) assert.equal(r.json.error.code, code, r.text);
  if (re) assert.match(r.json.error.message, new RegExp(re.source, 'i'));
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
  return r.json.error;
}

const chat = (key, model = 'chat') => h.post(gw, '/v1/chat/completions', key, h.chatBody({ model }));
// True once the proxy answers the key 200; else throws what it answered (for waitFor's message).
async function admitted(key) {
  const c = await chat(key);
  if (c.status === 200) return true;
  throw new Error(`${c.status} ${c.text.slice(0, 300)}`);
}

test('the admin token is enforced on /teams and /keys', async () => {
  for (const [method, path] of [['GET', '/teams'], ['POST', '/teams'], ['GET', '/keys'], ['POST', '/keys'],
    ['PATCH', '/keys/1'], ['DELETE', '/keys/1'], ['POST', '/keys/1/revoke'], ['GET', '/teams/1']]) {
    const none = await fetch(gw.adminUrl + path, { method });
    assert.equal(none.status, 401, `${method} ${path}`);
    const wrong = await fetch(gw.adminUrl + path, { method, headers: { Authorization: 'Bearer nope', 'x-tollgate-actor': 'x' },
      body: method === 'GET' || method === 'DELETE' ? undefined : '{"name":"x","team":"x"}' });
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error.code, 'invalid_admin_token');
  }
  assert.equal(count('teams'), 0);
});

test('teams: created (audited with the actor), listed, read by id and by name', async () => {
  let r = await write('POST', '/teams', { name: 'research' });
  assert.equal(r.status, 201, r.text);
  const t = r.json.team;
  assert.equal(t.object, 'team');
  assert.equal(t.name, 'research');
  assert.equal(t.private, false);
  assert.equal(t.active_keys, 0);
  assert.match(t.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  r = await write('POST', '/teams', { name: 'vault', private: true }, 'bob');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.team.private, true);
  assert.deepEqual(audits("action = 'team.create'").map((a) => a.slice(0, 3)),
    [['alice', 'team.create', 'team:research'], ['bob', 'team.create', 'team:vault']]);
  h.ctl(db, 'team', 'create', 'cli-team'); // the CLI's teams are the same teams
  r = await get('/teams');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.teams.map((x) => x.name), ['cli-team', 'research', 'vault']);
  r = await get(`/teams/${t.id}`);
  assert.deepEqual(r.json.team, t);
  r = await get('/teams/vault');
  assert.equal(r.json.team.private, true);
  refused(await get('/teams/nosuch'), 404, 'not_found', /no team with name 'nosuch'/);
  refused(await get('/teams/999999'), 404, 'not_found', /no team with id '999999'/);
  // id 0 is no team (not "every team")
  for (const zero of ['0', '000']) refused(await get(`/teams/${zero}`), 404, 'not_found', /no team with id/);
});

test('a key created over HTTP: its secret once, authenticating on the proxy within a second', async () => {
  const before = count('audit_log');
  const t0 = Date.now();
  const r = await write('POST', '/keys', { team: 'research', name: 'ci runner', models: ['chat'],
    expires_at: '2099-01-01', response_cache: false, deny_providers: ['nosuchprovider'], latency_target_ms: 60000 }, 'carol');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const { key, secret } = r.json;
  assert.match(secret, /^tg-[A-Za-z0-9_-]{43}$/);
  assert.equal(key.display_prefix, secret.slice(0, 11));
  assert.equal(key.object, 'api_key');
  assert.equal(key.team, 'research');
  assert.equal(key.name, 'ci runner');
  assert.equal(key.state, 'active');
  assert.deepEqual(key.models, ['chat']);
  assert.equal(key.expires_at, '2099-01-01T00:00:00Z');
  assert.equal(key.revoked_at, null);
  assert.equal(key.response_cache, false);
  assert.equal(key.private, false);
  assert.equal(key.allow_providers, null);
  assert.deepEqual(key.deny_providers, ['nosuchprovider']);
  assert.equal(key.latency_target_ms, 60000);
  assert.equal(key.max_cost, null);
  assert.equal(key.preference, null);
  assert.equal(r.json.warnings.length, 1);
  assert.match(r.json.warnings[0], /no price card names provider 'nosuchprovider'/);

  // the proxy admits it: the api_keys trigger's NOTIFY reloads the key store
  await h.waitFor('the new key to authenticate', () => admitted(secret), 3000, 20);
  const took = Date.now() - t0;
  console.log(`# POST /keys -> first request admitted: ${took} ms (request and answer included)`);
  assert.ok(took < 1000, `admitted within ${took} ms`);
  // its model allow list holds
  const other = await chat(secret, 'other');
  assert.equal(other.status, 403, other.text);

  // audited once, with the actor and without the hash
  assert.equal(count('audit_log'), before + 1);
  const [[actor, action, object, , afterRow]] = audits("action = 'key.create'");
  assert.deepEqual([actor, action, object], ['carol', 'key.create', `key:${key.id}`]);
  assert.equal(JSON.parse(afterRow).key_sha256, undefined);
  // the secret is nowhere: not in any table, not in any read, not in the logs
  const dump = h.psql(db, `select string_agg(t, ' ') from (select row_to_json(x)::text t from api_keys x
    union all select row_to_json(x)::text from audit_log x union all select row_to_json(x)::text from teams x) s`)[0][0];
  assert.ok(!dump.includes(secret.slice(11)), 'the secret part is stored nowhere');
  const list = await get('/keys?team=research');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.keys, [key]);
  assert.ok(!list.text.includes(secret.slice(11)) && !/sha256|hash|secret/.test(list.text));
  const one = await get(`/keys/${key.id}`);
  assert.deepEqual(one.json.key, key);
  assert.deepEqual((await get(`/keys/${key.display_prefix}`)).json.key, key);
  assert.ok(!gw.logs().includes(secret.slice(11)), 'the secret is never logged');
  assert.match(gw.logs(), new RegExp(`admin: carol created key ${key.display_prefix} \\(id ${key.id}\\) for team research`));
  // the CLI lists it like its own
  assert.match(h.ctl(db, 'key', 'list', '--team', 'research'), new RegExp(`${key.display_prefix}\\s+active\\s+off\\s+2099-01-01T00:00:00Z`));
});

test('a change (PATCH or PUT) is audited and reaches the running gateway; immutable fields are refused', async () => {
  const created = await write('POST', '/keys', { team: 'research', response_cache: true });
  assert.equal(created.status, 201, created.text);
  const { key, secret } = created.json;
  assert.equal(key.response_cache, true);
  assert.equal(key.models, null);
  assert.equal(key.expires_at, null);
  await h.waitFor('the key to authenticate', () => admitted(secret), 3000, 20);

  // deny the only provider: requests fail to route once the gateway reloads
  let r = await write('PATCH', `/keys/${key.id}`, { deny_providers: ['deepseek'], preference: 'cheapest' }, 'dave');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.key.deny_providers, ['deepseek']);
  assert.equal(r.json.key.preference, 'cheapest');
  assert.deepEqual(r.json.warnings, []);
  const t0 = Date.now();
  await h.waitFor('the deny list to apply', async () => (await chat(secret)).status !== 200, 3000, 20);
  console.log(`# PATCH /keys/{id} -> first request under the new rule: ${Date.now() - t0} ms`);
  // PUT means the same (fields left out keep their value); null clears
  r = await write('PUT', `/keys/${key.display_prefix}`, { deny_providers: null, response_cache: false, max_cost: '0.5' }, 'erin');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.key.deny_providers, []);
  assert.equal(r.json.key.preference, 'cheapest');
  assert.equal(r.json.key.max_cost, '0.5');
  assert.equal(r.json.key.response_cache, false);
  await h.waitFor('the deny list to be lifted', async () => (await chat(secret)).status === 200, 3000, 20);
  const rows = audits(`object = 'key:${key.id}' and action <> 'key.create'`);
  assert.deepEqual(rows.map((a) => a.slice(0, 2)), [['dave', 'key.route'], ['erin', 'key.route'], ['erin', 'key.response_cache']]);
  assert.equal(JSON.parse(rows[0][3]).deny_providers, null);
  assert.deepEqual(JSON.parse(rows[0][4]).deny_providers, ['deepseek']);

  // what a change may not give, and nothing to change
  const n = count('audit_log');
  for (const field of ['models', 'expires_at', 'team', 'name'])
    refused(await write('PATCH', `/keys/${key.id}`, { [field]: null }), 400, 'immutable_field', /cannot be changed on an existing key/, field);
  refused(await write('PATCH', `/keys/${key.id}`, {}), 400, 'missing_field', /Nothing to change/);
  // a provider both allowed and denied against what is stored: 409, clearly
  await write('PATCH', `/keys/${key.id}`, { deny_providers: ['deepseek'] });
  refused(await write('PATCH', `/keys/${key.id}`, { allow_providers: ['deepseek'] }), 409, 'conflict',
    /a provider would be both allowed and denied for this key/);
  // given together: refused before the database
  refused(await write('PATCH', `/keys/${key.id}`, { allow_providers: ['a'], deny_providers: ['a'] }), 400, 'invalid_value',
    /provider 'a' is both allowed and denied/, 'deny_providers');
  refused(await write('PATCH', '/keys/999999', { private: true }), 404, 'not_found', /no key with id '999999'/);
  assert.equal(count('audit_log'), n + 1, 'only the valid deny change was written');
});

test('a key revoked over HTTP is refused by the proxy within a second; revoking again changes nothing', async () => {
  assert.equal((await write('POST', '/teams', { name: 'ops' })).status, 201);
  const { key, secret } = (await write('POST', '/keys', { team: 'ops' })).json;
  const { key: key2, secret: secret2 } = (await write('POST', '/keys', { team: 'ops' })).json;
  await h.waitFor('both keys to authenticate', async () => await admitted(secret) && admitted(secret2), 3000, 20);
  const t0 = Date.now();
  let r = await write('POST', `/keys/${key.id}/revoke`, undefined, 'frank');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revoked_now, true);
  assert.equal(r.json.key.state, 'revoked');
  assert.ok(r.json.key.revoked_at);
  let refusedAt;
  await h.waitFor('the revoked key to be refused', async () => {
    const c = await chat(secret);
    if (c.status === 401 && c.json.error.code === 'key_revoked') { refusedAt = Date.now(); return true; }
    return false;
  }, 3000, 20);
  console.log(`# POST /keys/{id}/revoke -> first refusal: ${refusedAt - t0} ms`);
  assert.ok(refusedAt - t0 < 1000, `refused within ${refusedAt - t0} ms`);
  r = await write('POST', `/keys/${key.display_prefix}/revoke`, undefined, 'frank');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revoked_now, false);
  // DELETE revokes too (the row stays: usage rows refer to it)
  r = await write('DELETE', `/keys/${key2.id}`, undefined, 'gina');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revoked_now, true);
  await h.waitFor('the deleted key to be refused', async () => (await chat(secret2)).status === 401, 3000, 20);
  assert.deepEqual(audits("action = 'key.revoke'").map((a) => [a[0], a[2]]), [['frank', `key:${key.id}`], ['gina', `key:${key2.id}`]]);
  const ops = (await get('/teams/ops')).json.team;
  assert.equal(ops.active_keys, 0);
  assert.equal(ops.keys, 2);
  refused(await write('DELETE', '/keys/tg-nosuchkey'), 404, 'not_found', /no key with display prefix 'tg-nosuchkey'/);
  // a revoke that waits for a concurrent one (here: a transaction holding the
  // row) says "already revoked", not "no such key"
  const { key: key3 } = (await write('POST', '/keys', { team: 'ops' })).json;
  const holder = spawn('psql', [db, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c',
    `BEGIN; UPDATE api_keys SET revoked_at = now() WHERE id = ${key3.id}; SELECT pg_sleep(0.8); COMMIT;`]);
  const held = new Promise((resolve) => holder.on('exit', resolve));
  await h.waitFor('the row to be locked', async () => Number(h.psql(db,
    `select count(*) from pg_locks l join pg_stat_activity a using (pid) where a.query like '%pg_sleep(0.8)%' and l.mode = 'RowExclusiveLock'`)[0][0]) > 0, 3000, 20);
  r = await write('POST', `/keys/${key3.id}/revoke`, undefined, 'hana');
  assert.equal(await held, 0);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.revoked_now, false);
  assert.equal(r.json.key.state, 'revoked');
});

test('bad input: each refused with a clear code and message, a log line, and nothing saved', async () => {
  const keys = count('api_keys'), teams = count('teams'), audit = count('audit_log');
  const cases = [
    // [method, path, body, status, code, message, param, headers]
    ['POST', '/keys', '{"team": "research",', 400, 'invalid_value', /must be a JSON object; it could not be parsed/],
    ['POST', '/keys', '[1,2]', 400, 'invalid_value', /must be a JSON object/],
    ['POST', '/teams', '{"name": "junk"} trailing', 400, 'invalid_value', /with nothing after it/],
    ['POST', '/teams', '{"name": "twice", "name": "again"}', 400, 'invalid_value', /field 'name' is given twice/],
    ['POST', '/teams', '{"name": "ci\\u0000runner"}', 400, 'invalid_value', /may not contain \\u0000/],
    ['POST', '/teams', '', 400, 'invalid_value', /must be a JSON object/],
    ['POST', '/keys', { team: 'research', colour: 'blue' }, 400, 'unknown_field', /Unknown field 'colour' \(the fields are: team, name, models/, 'colour'],
    ['POST', '/teams', { name: 'x', owner: 'y' }, 400, 'unknown_field', /Unknown field 'owner'/, 'owner'],
    ['POST', '/keys', { team: 'nosuch' }, 404, 'not_found', /no team named 'nosuch'. Nothing was saved/],
    ['POST', '/keys', {}, 400, 'missing_field', /Field 'team'.*is required/, 'team'],
    ['POST', '/keys', { team: 'research', expires_at: '31/12/2030' }, 400, 'invalid_value', /expires_at: invalid date '31\/12\/2030'/, 'expires_at'],
    ['POST', '/keys', { team: 'research', expires_at: '2030-02-30' }, 400, 'invalid_value', /invalid date/, 'expires_at'],
    ['POST', '/keys', { team: 'research', expires_at: '2001-01-01' }, 400, 'invalid_value', /is in the past: the key would never work/, 'expires_at'],
    ['POST', '/keys', { team: 'research', expires_at: 1893456000 }, 400, 'invalid_value', /must be a string or null/, 'expires_at'],
    ['POST', '/keys', { team: 'research', models: 'chat,other' }, 400, 'invalid_value', /must be an array of strings or null/, 'models'],
    ['POST', '/keys', { team: 'research', models: ['a,b'] }, 400, 'invalid_value', /without commas/, 'models'],
    ['POST', '/keys', { team: 'research', models: [] }, 400, 'invalid_value', /invalid models/, 'models'],
    ['POST', '/keys', { team: 'research', models: ['a b'] }, 400, 'invalid_value', /letters, digits/, 'models'],
    ['POST', '/keys', { team: 'research', name: '' }, 400, 'invalid_value', /invalid name: give 1 to 200/, 'name'],
    ['POST', '/keys', { team: 'research', response_cache: 'on' }, 400, 'invalid_value', /must be true or false/, 'response_cache'],
    ['POST', '/keys', { team: 'research', latency_target_ms: 'fast' }, 400, 'invalid_value', /whole number/, 'latency_target_ms'],
    ['POST', '/keys', { team: 'research', latency_target_ms: 0 }, 400, 'invalid_value', /invalid latency_target_ms: must be a positive integer/, 'latency_target_ms'],
    ['POST', '/keys', { team: 'research', max_cost: 0.5 }, 400, 'invalid_value', /must be a string or null/, 'max_cost'],
    ['POST', '/keys', { team: 'research', max_cost: '1000001' }, 400, 'invalid_value', /invalid max_cost: at most 1000000/, 'max_cost'],
    ['POST', '/keys', { team: 'research', preference: 'cheap' }, 400, 'invalid_value', /invalid preference: must be cheapest, fastest or balanced/, 'preference'],
    ['POST', '/keys', { team: 'research', allow_providers: [] }, 400, 'invalid_value', /invalid allow_providers/, 'allow_providers'],
    ['POST', '/teams', { name: 'research' }, 409, 'conflict', /a team named 'research' already exists/],
    ['POST', '/teams', { name: 'bad name' }, 400, 'invalid_value', /invalid team name 'bad name'/, 'name'],
    ['POST', '/teams', { private: true }, 400, 'missing_field', /Field 'name'/, 'name'],
    ['POST', '/teams', { name: 'x', private: 'yes' }, 400, 'invalid_value', /true or false/, 'private'],
    ['POST', '/keys', JSON.stringify({ team: 'research', name: 'x'.repeat(100 * 1024) }), 413, 'body_too_large', /64 KiB/],
    ['POST', '/keys', { team: 'research' }, 400, 'missing_actor', /x-tollgate-actor/, 'x-tollgate-actor', null],
    ['DELETE', '/teams', undefined, 405, 'method_not_allowed', /Use GET, POST for \/teams/],
    ['PUT', '/teams/research', {}, 405, 'method_not_allowed', /Use GET for/],
    ['GET', '/keys/1/revoke', undefined, 405, 'method_not_allowed', /Use POST for/],
    ['POST', '/keys/1', {}, 405, 'method_not_allowed', /Use GET, PATCH, PUT, DELETE/],
    ['GET', '/keys/1/frobnicate', undefined, 404, 'unknown_url', /Unknown admin URL/],
    ['GET', '/teams/a/b', undefined, 404, 'unknown_url', /Unknown admin URL/],
    ['GET', '/keys?teem=research', undefined, 400, 'unknown_parameter', /Unknown query parameter 'teem' \(this URL takes: team\)/, 'teem'],
    ['GET', '/keys?team=nosuch', undefined, 404, 'not_found', /no team named 'nosuch'/],
    ['GET', '/keys/tg-nosuchkey', undefined, 404, 'not_found', /no key with display prefix/],
    ['GET', "/keys/a'b", undefined, 404, 'not_found', /There is no key/],
  ];
  for (const [method, path, body, status, code, re, param, actor = 'mallory'] of cases) {
    const r = await write(method, path, body, actor);
    const what = `${method} ${path} ${typeof body === 'string' ? body.slice(0, 40) : JSON.stringify(body)}`;
    assert.equal(r.status, status, `${what}: ${r.text}`);
    refused(r, status, code, re, param);
  }
  // a label that is not UTF-8 (raw bytes): PostgreSQL's refusal is a 400, not a 503
  const raw = await fetch(gw.adminUrl + '/keys', { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}`,
    'x-tollgate-actor': 'mallory' }, body: Buffer.concat([Buffer.from('{"team":"research","name":"ab'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]) });
  assert.equal(raw.status, 400, await raw.clone().text());
  assert.match((await raw.json()).error.message, /PostgreSQL refused a value.*Nothing was saved/);
  // over the listener's 1 MiB cap libevent refuses the body itself (its own
  // 413 page, and it closes the connection: the client may see that first)
  try {
    const huge = await write('POST', '/keys', JSON.stringify({ team: 'research', name: 'x'.repeat(2 << 20) }));
    assert.equal(huge.status, 413);
  } catch (e) {
    assert.ok(e instanceof TypeError && e.cause && /ECONNRESET|EPIPE|UND_ERR_SOCKET/.test(e.cause.code), String(e));
  }
  // an unknown field's name is cut to 64 characters in the answer
  const long = await write('POST', '/teams', { ['f'.repeat(5000)]: 1 });
  assert.equal(refused(long, 400, 'unknown_field').param, 'f'.repeat(64));
  assert.equal(count('api_keys'), keys);
  assert.equal(count('teams'), teams);
  assert.equal(count('audit_log'), audit);
  // each refusal is a log line naming the request, the status and the code
  const logs = gw.logs();
  assert.match(logs, /admin keys: POST \/keys refused: 400 unknown_field: Unknown field 'colour'/);
  assert.match(logs, /admin keys: POST \/keys refused: 404 not_found: No team named 'nosuch'/);
  assert.match(logs, /admin keys: POST refused: the body \(\d+ bytes\) is over 64 KiB/);
  assert.match(logs, /admin keys: POST refused: the body \(20 bytes\) is not a JSON object/);
  assert.match(logs, /admin keys: POST refused: no valid x-tollgate-actor header/);
  assert.match(logs, /admin keys: DELETE \/teams refused: 405 method_not_allowed/);
  // 405 says which methods the URL takes
  const r = await admin('DELETE', '/teams');
  assert.equal(r.headers.get('allow'), 'GET, POST');
});

test('a key made by the CLI reads the same over HTTP; two keys sharing a prefix need the id', async () => {
  const secret = h.ctl(db, 'key', 'create', '--team', 'cli-team', '--models', 'chat,other', '--max-cost', '0.25',
    '--preference', 'fastest', '--private').trim();
  const r = await get('/keys?team=cli-team');
  assert.equal(r.json.keys.length, 1);
  const k = r.json.keys[0];
  assert.equal(k.display_prefix, secret.slice(0, 11));
  assert.deepEqual(k.models, ['chat', 'other']);
  assert.equal(k.max_cost, '0.25');
  assert.equal(k.preference, 'fastest');
  assert.equal(k.private, true);
  // a display prefix shared by two keys (made so by hand) is ambiguous: 409
  h.psql(db, `update api_keys set display_prefix = '${k.display_prefix}' where id = (select max(id) from api_keys where id <> ${k.id})`);
  refused(await get(`/keys/${k.display_prefix}`), 409, 'conflict', /2 keys have the display prefix .*; give the id/);
  assert.equal((await get(`/keys/${k.id}`)).status, 200);
});
