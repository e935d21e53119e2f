// Child processes of the slow-link benchmark: each in its own process group, logged to
// OUT/logs/<name>.log, and killed by PID (its group) on every exit path: normal end, error,
// SIGINT/SIGTERM/SIGHUP. Plus bounded polling and line-oriented JSON command helpers.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tracked = new Set();
let logDir = null;

/** Sets (and empties) the directory the process logs go to. */
export function setLogDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  logDir = dir;
}

const alive = (child) => child.exitCode === null && child.signalCode === null;

function signalGroup(child, sig) {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    if (alive(child)) try { process.kill(child.pid, sig); } catch { /* gone */ }
  }
}

/**
 * Spawns `cmd args` in a new process group. stdout+stderr go to the log unless opts.stdio says
 * otherwise (e.g. pipes for the JSON helpers). Returns { name, child, logPath }.
 */
export function spawnTracked(name, cmd, args, opts = {}) {
  const logPath = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logPath, 'w');
  const stdio = opts.stdio || ['ignore', fd, fd];
  const child = spawn(cmd, args, { detached: true, ...opts, stdio });
  fs.closeSync(fd);
  const entry = { name, child, logPath, error: null };
  child.on('error', (e) => { entry.error = e; });
  tracked.add(entry);
  return entry;
}

export function logTail(entry, n = 15) {
  try {
    return fs.readFileSync(entry.logPath, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

export function assertRunning(entry) {
  if (entry.error) throw new Error(`${entry.name}: cannot start: ${entry.error.message}`);
  if (!alive(entry.child)) {
    throw new Error(`${entry.name} (pid ${entry.child.pid}) exited (code ${entry.child.exitCode}, ` +
      `signal ${entry.child.signalCode}); log ${entry.logPath}:\n${logTail(entry)}`);
  }
}

/** Stops one process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(entry, graceMs = 4000) {
  if (alive(entry.child)) signalGroup(entry.child, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(entry.child) && Date.now() < deadline) await sleep(25);
  signalGroup(entry.child, 'SIGKILL');
  tracked.delete(entry);
}

/** Sends a signal to one tracked process group (SIGSTOP/SIGCONT to pause content). */
export function signal(entry, sig) {
  signalGroup(entry.child, sig);
}

export async function stopAll() {
  const entries = [...tracked].reverse();
  for (const e of entries) if (alive(e.child)) signalGroup(e.child, 'SIGCONT');
  await Promise.all(entries.map((e) => stop(e)));
}

process.on('exit', () => {
  for (const e of tracked) { signalGroup(e.child, 'SIGCONT'); signalGroup(e.child, 'SIGKILL'); }
});
for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.on(sig, () => {
    process.stderr.write(`\n[slowlink] ${sig}: stopping\n`);
    stopAll().finally(() => process.exit(128 + num));
  });
}

/** Polls fn until truthy; throws naming `what` after timeoutMs. */
export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

export function tcpReady(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/**
 * A helper process that answers each stdin line with one JSON line on stdout (linkemu.py,
 * xhelper.py). `call(line)` sends `ID line` and resolves with the answer carrying that id;
 * every call is bounded by `timeoutMs`; an {"error": ...} answer rejects. An answer that
 * arrives after its call timed out is logged and dropped, so one slow answer cannot shift the
 * answers of later calls.
 */
export function jsonLineProcess(name, cmd, args, opts = {}) {
  const entry = spawnTracked(name, cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
  const log = fs.createWriteStream(entry.logPath, { flags: 'a' });
  entry.child.stderr.pipe(log);
  const waiting = new Map(); // id -> { resolve, reject, timer }
  let seq = 0;
  let buf = '';
  entry.child.stdout.setEncoding('utf8');
  entry.child.stdout.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let v;
      try { v = JSON.parse(line); } catch { log.write(`bad answer: ${line}\n`); continue; }
      const w = waiting.get(String(v.id));
      if (!w) { log.write(`late or unknown answer: ${line}\n`); continue; }
      waiting.delete(String(v.id));
      clearTimeout(w.timer);
      if (v.error) w.reject(new Error(`${name}: ${v.error}`)); else w.resolve(v);
    }
  });
  entry.child.on('exit', (code, sig) => {
    for (const w of waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error(`${name} exited (code ${code}, signal ${sig}); log ${entry.logPath}:\n${logTail(entry)}`));
    }
    waiting.clear();
  });
  entry.child.stdin.on('error', () => { /* reported through 'exit' */ });
  entry.call = (line, timeoutMs = 15000) => new Promise((resolve, reject) => {
    if (!alive(entry.child)) { reject(new Error(`${name} is not running; log:\n${logTail(entry)}`)); return; }
    const id = String(++seq);
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`${name}: no answer to '${line}' in ${timeoutMs} ms`));
    }, timeoutMs);
    waiting.set(id, { resolve, reject, timer });
    entry.child.stdin.write(`${id} ${line}\n`);
  });
  return entry;
}
