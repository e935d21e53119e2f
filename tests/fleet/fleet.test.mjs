// A fleet of three wsvnc instances behind a real HAProxy (Debian's), configured by
// docs/fleet/haproxy.cfg exactly as shipped: consistent hashing on the `token` query
// parameter, TLS terminated with a CA made for this run, health checks, redispatch.
//
// What is checked, with real components only (HAProxy, three wsvnc processes, one built-in
// demo VNC server process per token in use, headless Chromium running the built-in viewer,
// and raw WebSocket handshakes over TLS):
//   * TLS: the balancer presents the certificate of this run's CA and nothing else verifies;
//   * routing: every request naming a token (page, /ws, /websockify) reaches the same
//     instance, and the tokens spread over all three;
//   * session sharing: two browsers of one token hold ONE VNC connection, from the owner's
//     process (read from the kernel's socket table, so it is the instance's own view, not
//     the balancer's);
//   * failover: the owner is killed (SIGKILL by PID); both browsers reconnect by themselves
//     to the new owner and share a fresh session there; viewers of other tokens keep their
//     WebSocket and keep receiving frames; only the lost instance's tokens move;
//   * rejoin: the instance comes back and takes back exactly its own tokens.
// Which instance answered comes from the X-Wsvnc-Instance header the recipe adds, which
// the socket table confirms. Nothing here depends on the browser protocol's messages.
//
// Ports 127.0.0.1:19160-19199, moved by 1000·WSVNC_TEST_OFFSET (0..9). WSVNC_BIN picks the
// binary (default target/release/wsvnc). Missing haproxy, openssl, ss or Chromium fail the
// test and name their Debian package.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { assertRunning, killAll, killNow, spawnTracked, tcpReady, waitFor, which } from '../browser/lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../viewer/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const HAPROXY_CFG = path.join(ROOT, 'docs', 'fleet', 'haproxy.cfg');
const WSVNC = process.env.WSVNC_BIN || path.join(ROOT, 'target', 'release', 'wsvnc');

const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
if (!(Number.isInteger(OFFSET) && OFFSET >= 0 && OFFSET <= 9)) throw new Error('WSVNC_TEST_OFFSET must be 0..9');
const BASE = 19160 + 1000 * OFFSET;
const LB_PORT = BASE;
const ORIGIN = `https://127.0.0.1:${LB_PORT}`;
// Server names as in docs/fleet/haproxy.cfg; their addresses go in through the environment.
const INSTANCES = { 'wsvnc-a': BASE + 1, 'wsvnc-b': BASE + 2, 'wsvnc-c': BASE + 3 };
const NAMES = Object.keys(INSTANCES);
const VICTIM = 'wsvnc-b';
// Thirty tokens, each its own VNC server address; a demo server is started only for the
// tokens that viewers open.
const TOKENS = Array.from({ length: 30 }, (_, i) => `desk-${String(i).padStart(2, '0')}`);
const demoPort = (token) => BASE + 10 + TOKENS.indexOf(token);
const WAIT = { timeoutMs: 20000, intervalMs: 100 };

const state = {
  dir: null, ca: null, spki: null, tokenFile: null,
  instances: {}, // name → tracked process
  table: null, // token → instance, before the failover
  live: null, // { victim: token, others: [token, ...] }
  browser: null, viewers: [], relay: null, survivor: null,
};

// ------------------------------------------------------------------ set-up

function requireCommands() {
  const need = { haproxy: 'haproxy', openssl: 'openssl', ss: 'iproute2' };
  const missing = Object.entries(need).filter(([cmd]) => !which(cmd)).map(([c, p]) => `${c} (Debian package ${p})`);
  if (!which(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
  if (!fs.existsSync(WSVNC)) missing.push(`${WSVNC} (cargo build --release, or set WSVNC_BIN)`);
  if (missing.length) throw new Error('missing prerequisites:\n  - ' + missing.join('\n  - '));
}

/** A CA and a certificate for 127.0.0.1 signed by it; returns the CA PEM and the leaf's SPKI hash. */
function makeCertificates(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=wsvnc fleet test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  openssl('req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', 'lb.key', '-out', 'lb.csr');
  fs.writeFileSync(path.join(dir, 'lb.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', 'lb.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'lb.ext', '-out', 'lb.crt');
  const crt = fs.readFileSync(path.join(dir, 'lb.crt'));
  // HAProxy's crt file: the certificate, then its key.
  fs.writeFileSync(path.join(dir, 'lb.pem'), Buffer.concat([crt, fs.readFileSync(path.join(dir, 'lb.key'))]));
  const spkiDer = new crypto.X509Certificate(crt).publicKey.export({ type: 'spki', format: 'der' });
  return { ca: fs.readFileSync(path.join(dir, 'ca.pem')), spki: crypto.createHash('sha256').update(spkiDer).digest('base64') };
}

/** `--relay` where the binary makes relay mode (/websockify) opt-in, nothing where it is always on. */
function relayArgs() {
  const help = execFileSync(WSVNC, ['--help']).toString();
  return /^\s+--relay\s/m.test(help) ? ['--relay'] : [];
}

async function startInstance(name, label = name) {
  const port = INSTANCES[name];
  if (await tcpReady(port)) throw new Error(`127.0.0.1:${port} is already in use`);
  const args = ['--listen', `127.0.0.1:${port}`, '--token-file', state.tokenFile, ...relayArgs()];
  const p = spawnTracked(`fleet-${label}`, WSVNC, args, { env: { ...process.env, RUST_LOG: 'info' } });
  await waitFor(`${name} on ${port}`, async () => { assertRunning(p); return tcpReady(port); }, WAIT);
  state.instances[name] = p;
}

async function startDemo(token) {
  const port = demoPort(token);
  const p = spawnTracked(`fleet-demo-${token}`, WSVNC, ['--demo-server', `127.0.0.1:${port}`, '--demo-size', '320x240']);
  await waitFor(`demo VNC server for ${token} on ${port}`, async () => { assertRunning(p); return tcpReady(port); }, WAIT);
}

async function startBalancer() {
  if (await tcpReady(LB_PORT)) throw new Error(`127.0.0.1:${LB_PORT} is already in use`);
  const env = {
    ...process.env,
    WSVNC_LB_BIND: `127.0.0.1:${LB_PORT}`,
    WSVNC_LB_CERT: path.join(state.dir, 'lb.pem'),
    WSVNC_A: `127.0.0.1:${INSTANCES['wsvnc-a']}`,
    WSVNC_B: `127.0.0.1:${INSTANCES['wsvnc-b']}`,
    WSVNC_C: `127.0.0.1:${INSTANCES['wsvnc-c']}`,
  };
  execFileSync('haproxy', ['-c', '-q', '-f', HAPROXY_CFG], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = spawnTracked('fleet-haproxy', 'haproxy', ['-db', '-f', HAPROXY_CFG], { env });
  await waitFor(`HAProxy on ${LB_PORT}`, async () => { assertRunning(p); return tcpReady(LB_PORT); }, WAIT);
}

// ------------------------------------------------------------------ clients

/** GET over TLS on a fresh connection; `ca` null = the system's trust store. */
function get(pathAndQuery, { ca = state.ca } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(`${ORIGIN}${pathAndQuery}`, { ca: ca ?? undefined, agent: false, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(),
        issuer: res.socket.getPeerCertificate?.()?.issuer,
      }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${pathAndQuery}: timed out`)));
    req.on('error', reject);
  });
}

async function ownerOf(token) {
  const r = await get(`/?token=${token}`);
  assert.equal(r.status, 200, `GET /?token=${token}`);
  assert.match(r.headers['content-type'], /^text\/html/);
  const who = r.headers['x-wsvnc-instance'];
  assert.ok(NAMES.includes(who), `X-Wsvnc-Instance of /?token=${token}: ${who}`);
  return who;
}

/** token → instance, asking in `order` (a round-robin balancer would answer differently per order). */
async function routingTable(order = TOKENS) {
  const table = {};
  for (const t of order) table[t] = await ownerOf(t);
  return Object.fromEntries(TOKENS.map((t) => [t, table[t]]));
}

/**
 * The instances holding a TCP connection to `token`'s VNC server, one entry per connection,
 * from the kernel's socket table (`ss -p`): which process owns each socket.
 */
function vncClients(token) {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${demoPort(token)} )`]).toString();
  const byPid = new Map(Object.entries(state.instances).map(([name, p]) => [p.child.pid, name]));
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => byPid.get(Number(m[1])) ?? `pid ${m[1]}`).sort();
}

/**
 * A websockify-style relay: WebSocket handshake on /websockify?token= (subprotocol
 * `binary`) over TLS, then the VNC server's first bytes in one unmasked binary frame.
 */
function openRelay(token) {
  return new Promise((resolve, reject) => {
    const req = https.request(`${ORIGIN}/websockify?token=${token}`, {
      ca: state.ca, agent: false, timeout: 10000,
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'binary',
      },
    });
    req.on('response', (res) => reject(new Error(`/websockify?token=${token}: HTTP ${res.statusCode}, not 101`)));
    req.on('timeout', () => req.destroy(new Error(`/websockify?token=${token}: timed out`)));
    req.on('error', reject);
    req.on('upgrade', (res, socket, head) => {
      const relay = { instance: res.headers['x-wsvnc-instance'], socket, closed: false, greeting: null };
      socket.on('close', () => { relay.closed = true; });
      socket.on('error', () => {});
      let buf = head;
      const onData = (d) => {
        buf = Buffer.concat([buf, d]);
        // Server frames are unmasked (RFC 6455 §5.1); the greeting is 12 bytes: 2-byte header.
        if (buf.length < 14) return;
        socket.off('data', onData);
        assert.equal(buf[0], 0x82, 'a final binary frame');
        relay.greeting = buf.subarray(2, 2 + buf[1]).toString('latin1');
        resolve(relay);
      };
      socket.on('data', onData);
      onData(Buffer.alloc(0));
    });
    req.end();
  });
}

/**
 * The built-in viewer for `token` in its own browser context. The WebSockets the page opens
 * are followed through the DevTools protocol: URL, handshake response headers, frames
 * received, close.
 */
async function openViewer(token) {
  const context = await state.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const sockets = []; // in creation order
  const byId = new Map();
  cdp.on('Network.webSocketCreated', (e) => {
    const s = { id: e.requestId, url: e.url, instance: null, frames: 0, closed: false };
    sockets.push(s);
    byId.set(e.requestId, s);
  });
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const s = byId.get(e.requestId);
    const h = Object.entries(e.response.headers).find(([k]) => k.toLowerCase() === 'x-wsvnc-instance');
    if (s) s.instance = h ? h[1] : '(none)';
  });
  cdp.on('Network.webSocketFrameReceived', (e) => { const s = byId.get(e.requestId); if (s) s.frames++; });
  cdp.on('Network.webSocketClosed', (e) => { const s = byId.get(e.requestId); if (s) s.closed = true; });
  await cdp.send('Network.enable');
  const res = await page.goto(`${ORIGIN}/?token=${token}`);
  assert.equal(res.status(), 200);
  const v = { token, context, page, sockets, doc: res.headers()['x-wsvnc-instance'] };
  state.viewers.push(v);
  return v;
}

/** The viewer's open WebSocket once it has received a few frames and `ok(socket)` holds. */
function liveSocket(v, what, ok = () => true) {
  return waitFor(`${what} (sockets: ${JSON.stringify(v.sockets)})`, () => {
    const s = v.sockets.at(-1);
    return s && !s.closed && s.instance && s.frames >= 3 && s.url.includes(`/ws?token=${v.token}`) && ok(s) ? s : null;
  }, WAIT);
}

// ------------------------------------------------------------------ tests

before(async () => {
  requireCommands();
  state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-fleet-'));
  ({ ca: state.ca, spki: state.spki } = makeCertificates(state.dir));
  // One token file for every instance: the shared configuration of the fleet.
  state.tokenFile = path.join(state.dir, 'tokens.cfg');
  fs.writeFileSync(state.tokenFile, TOKENS.map((t) => `${t}: 127.0.0.1:${demoPort(t)}\n`).join(''));
  for (const name of NAMES) await startInstance(name);
  await startBalancer();
});

after(async () => {
  if (state.browser) await state.browser.close().catch(() => {});
  await killAll();
  if (state.dir) fs.rmSync(state.dir, { recursive: true, force: true });
});

test('TLS is terminated at the balancer with the certificate of this run\'s CA', async () => {
  const r = await get('/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.trim(), 'ok');
  assert.equal(r.issuer.CN, 'wsvnc fleet test CA');
  await assert.rejects(get('/healthz', { ca: null }), (e) => /self[- ]signed|unable to (get|verify)/i.test(e.message),
    'without the test CA the certificate must not verify');
});

test('every request naming a token reaches one instance; tokens spread over all three', async () => {
  const table = await routingTable();
  assert.deepEqual(await routingTable([...TOKENS].reverse()), table, 'the same owners, asked in another order');
  const counts = Object.fromEntries(NAMES.map((n) => [n, TOKENS.filter((t) => table[t] === n).length]));
  console.log(`tokens per instance: ${JSON.stringify(counts)}`);
  for (const n of NAMES) assert.ok(counts[n] > 0, `${n} owns no token of ${TOKENS.length}`);
  state.table = table;
  // One token in use per instance; the victim's token gets two browsers and a relay.
  const first = (n) => TOKENS.find((t) => table[t] === n);
  state.live = { victim: first(VICTIM), others: NAMES.filter((n) => n !== VICTIM).map(first) };
  for (const t of [state.live.victim, ...state.live.others]) await startDemo(t);
  // The relay endpoint follows the same rule.
  for (const t of [state.live.victim, ...state.live.others]) {
    const r = await openRelay(t);
    assert.equal(r.instance, table[t], `/websockify?token=${t}`);
    assert.equal(r.greeting, 'RFB 003.008\n');
    r.socket.destroy();
  }
});

test('all viewers of one token share one VNC session on its owner', async () => {
  assert.ok(state.live, 'routing test ran');
  state.browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Trust exactly the balancer's key (Chromium has no per-launch CA option).
    args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${state.spki}`],
  });
  const { victim, others } = state.live;
  const viewers = [await openViewer(victim), await openViewer(victim), ...await Promise.all(others.map(openViewer))];
  for (const v of viewers) {
    assert.equal(v.doc, state.table[v.token], `page of ${v.token}`);
    const s = await liveSocket(v, `a live /ws for ${v.token}`);
    assert.equal(s.instance, state.table[v.token], `/ws of ${v.token}`);
  }
  // Two browsers, one VNC connection, held by the owner's process.
  assert.deepEqual(vncClients(victim), [VICTIM]);
  for (const t of others) assert.deepEqual(vncClients(t), [state.table[t]]);
  // A relay is a connection of its own, on the same instance.
  state.relay = await openRelay(victim);
  assert.equal(state.relay.instance, VICTIM);
  assert.equal(state.relay.greeting, 'RFB 003.008\n');
  assert.deepEqual(vncClients(victim), [VICTIM, VICTIM]);
});

test('an instance killed: its viewers reconnect to the new owner, other tokens are untouched', async () => {
  assert.ok(state.relay, 'session test ran');
  const { victim, others } = state.live;
  const [k1, k2, ...rest] = state.viewers;
  const before = rest.map((v) => ({ v, socket: v.sockets.at(-1), count: v.sockets.length, frames: v.sockets.at(-1).frames }));
  const old = [k1, k2].map((v) => v.sockets.at(-1));

  const proc = state.instances[VICTIM];
  killNow(proc); // SIGKILL, by PID (its process group)
  await waitFor(`${VICTIM} gone`, () => proc.child.exitCode !== null || proc.child.signalCode !== null, WAIT);
  await waitFor('the relay through the lost instance closed', () => state.relay.closed, WAIT);

  // The viewer reconnects by itself; the balancer sends it to the next instance on the ring.
  const fresh = [];
  for (const [i, v] of [k1, k2].entries()) {
    fresh.push(await liveSocket(v, `${v.token}: a new live /ws after the loss`, (s) => s !== old[i]));
    assert.ok(old[i].closed, 'the old WebSocket closed');
  }
  const survivor = fresh[0].instance;
  assert.ok(NAMES.includes(survivor) && survivor !== VICTIM, `new owner ${survivor}`);
  assert.equal(fresh[1].instance, survivor, 'both viewers on the same new owner');
  assert.equal(await ownerOf(victim), survivor, 'the page for the token now comes from the new owner');
  // A fresh session there, shared by both; nothing left of the lost one.
  await waitFor('one VNC connection, from the new owner', () => {
    const c = vncClients(victim);
    return c.length === 1 && c[0] === survivor;
  }, WAIT);
  state.survivor = survivor;

  // Other tokens: same WebSocket, still open, still receiving frames.
  for (const b of before) {
    await waitFor(`${b.v.token} keeps receiving frames`, () => b.socket.frames > b.frames + 3, WAIT);
    assert.equal(b.socket.closed, false, `${b.v.token}: WebSocket untouched`);
    assert.equal(b.v.sockets.length, b.count, `${b.v.token}: no reconnect`);
  }
  for (const t of others) assert.deepEqual(vncClients(t), [state.table[t]]);

  const relay = await openRelay(victim);
  assert.equal(relay.instance, survivor);
  assert.equal(relay.greeting, 'RFB 003.008\n');
  relay.socket.destroy();

  // Consistent hashing: only the lost instance's tokens moved.
  const table = await routingTable();
  const moved = TOKENS.filter((t) => table[t] !== state.table[t]);
  const lost = TOKENS.filter((t) => state.table[t] === VICTIM);
  console.log(`instance lost: ${moved.length} of ${TOKENS.length} tokens moved (it owned ${lost.length})`);
  assert.deepEqual(moved, lost);
  for (const t of moved) assert.notEqual(table[t], VICTIM);
});

test('the instance comes back and takes back exactly its own tokens', async () => {
  assert.ok(state.survivor, 'failover test ran');
  const { victim } = state.live;
  await startInstance(VICTIM, `${VICTIM}-restarted`);
  // Up again after two good health checks.
  await waitFor(`the balancer routing ${victim} to ${VICTIM} again`, async () => (await ownerOf(victim)) === VICTIM, WAIT);
  const table = await routingTable();
  const moved = TOKENS.filter((t) => table[t] !== state.table[t]);
  console.log(`instance back: routing equals the original for ${TOKENS.length - moved.length} of ${TOKENS.length} tokens`);
  assert.deepEqual(table, state.table);
  // Viewers already on the interim owner stay there (see docs/fleet.md: until they reconnect).
  for (const v of state.viewers.slice(0, 2)) {
    const s = v.sockets.at(-1);
    assert.equal(s.closed, false);
    assert.equal(s.instance, state.survivor);
  }
});
