// One measurement of the slow-link benchmark (a link x content x client x run): page, first
// picture, window (updates, probe latency, wire bytes), motion PSNR, rest (exact match).
// The reference-state signatures the page and the PSNR use are made here too.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { CFG, OUT, env, log } from './config.mjs';
import { BASE_COLOUR, PALETTE, PROBE, SCREEN } from './content.mjs';
import { sleep, waitFor } from './procs.mjs';
import { median, probeLatencies, psnrFromSse, psnrRgbaRgb } from './report.mjs';

/**
 * Per-reference sample points for telling reference states apart cheaply (in the page, every
 * time the region changes): for each reference, 150 points where it differs from its nearest
 * other reference, 150 where it differs from the second nearest, and 150 anywhere, with the
 * reference's values there. Neighbouring states (a terminal one line on, a window 16 px on)
 * differ in only a few per cent of the pixels; points chosen there keep a lossy but correct
 * picture far closer to its own reference than to a neighbour. Deterministic (seeded).
 */
export function signature(region, refs) {
  const [, , w, h] = region;
  let seed = 99991;
  const rnd = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed >>> 4; };
  const cand = Array.from({ length: 20000 }, () => rnd() % (w * h));
  const px = (ref, p) => [ref[p * 3], ref[p * 3 + 1], ref[p * 3 + 2]];
  const differs = (a, b, p) => Math.max(Math.abs(a[p * 3] - b[p * 3]), Math.abs(a[p * 3 + 1] - b[p * 3 + 1]),
    Math.abs(a[p * 3 + 2] - b[p * 3 + 2])) > 32;
  // Nearness of two references: summed differences at the first 2000 candidates.
  const near = cand.slice(0, 2000);
  const vals = refs.map((ref) => Uint8Array.from(near.flatMap((p) => px(ref, p))));
  const dist = vals.map((a, i) => vals.map((b, j) => {
    if (i === j) return Infinity;
    let d = 0;
    for (let k = 0; k < a.length; k++) d += Math.abs(a[k] - b[k]);
    return d;
  }));
  return {
    refs: refs.map((ref, i) => {
      const nearest = dist[i].map((d, j) => [d, j]).sort((a, b) => a[0] - b[0]).slice(0, 2).map(([, j]) => j);
      const points = [...new Set([
        ...nearest.flatMap((j) => cand.filter((p) => differs(ref, refs[j], p)).slice(0, 150)),
        ...cand.slice(0, 150),
      ])];
      return { points, values: points.flatMap((p) => px(ref, p)) };
    }),
  };
}

/** Mean absolute difference per channel of an RGBA image from each reference at its points. */
function signatureScores(rgba, sig) {
  return sig.refs.map(({ points, values }) => {
    let sum = 0;
    for (let k = 0; k < points.length; k++) {
      const o = points[k] * 4;
      sum += Math.abs(rgba[o] - values[k * 3]) + Math.abs(rgba[o + 1] - values[k * 3 + 1]) + Math.abs(rgba[o + 2] - values[k * 3 + 2]);
    }
    return sum / (points.length * 3);
  });
}

function colourIndex(r, g, b) {
  let best = -1;
  let bestD = 31;
  PALETTE.forEach(([pr, pg, pb], i) => {
    const d = Math.max(Math.abs(pr - r), Math.abs(pg - g), Math.abs(pb - b));
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}

/**
 * Offset page clock - wall clock (ms), from the round trip with the smallest delay. The wall
 * clock (Date.now() here, time.time() in the X helper) is what the probe's and the rest
 * phase's times are taken in; the page's clock (timeOrigin + monotonic now()) is measured
 * afresh for every page, so drift between the two within one page's life is negligible.
 */
async function clockOffset(page) {
  let best = null;
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    const p = await page.evaluate(() => window.__slb.now());
    const t1 = Date.now();
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: p - (t0 + t1) / 2 };
  }
  return best;
}

/** Best PSNR of a canvas region (RGBA) over the references, via the signature's top 3. */
function motionPsnr(rgba, refs, sig) {
  const ranked = signatureScores(rgba, sig).map((score, r) => [score, r]).sort((a, b) => a[0] - b[0]);
  return Math.max(...ranked.slice(0, 3).map(([, r]) => psnrRgbaRgb(rgba, refs[r])));
}

let probeSeq = 0;

/**
 * CPU time (ms, user + system) of every live process in process group `pgid`: the proxy and
 * any child it forked (websockify serves each connection from a child process). /proc/PID/stat
 * fields 5 (pgrp), 14 (utime), 15 (stime), in clock ticks of 10 ms (Linux USER_HZ).
 */
function groupCpuMs(pgid) {
  let ticks = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * 10;
}

export async function measure({ ctx, client, content, link, run, emu, xprobe, xwork, tmp, sig, proxyPgid, vncPgid }) {
  const row = { link: link.name, content: content.name, client: client.name, run, load: os.loadavg()[0] };
  const page = await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  let paused = false;
  // Phase durations (ms), for the log: where a measurement's time goes.
  row.phases = {};
  let tPhase = Date.now();
  const phase = (name) => { const t = Date.now(); row.phases[name] = t - tPhase; tPhase = t; };
  try {
    await xprobe.call(`root ${BASE_COLOUR.join(' ')}`);
    // Configured before any page script runs, so the first picture is timed from the start.
    await page.addInitScript((cfg) => window.__slb.configure(cfg),
      { selector: client.selector, region: content.region, probe: PROBE, base: BASE_COLOUR, sig });
    await page.goto(client.url, { timeout: 60000, waitUntil: 'load' });
    phase('load');
    await waitFor(`${client.name}: canvas ${SCREEN.w}x${SCREEN.h}`, async () => {
      if (pageErrors.length) throw new Error(`page error: ${pageErrors[0]}`);
      const s = await page.evaluate(() => window.__slb.size());
      return s && s[0] === SCREEN.w && s[1] === SCREEN.h;
    }, { timeoutMs: CFG.connectMs, intervalMs: 50 });
    // First picture: the first update has reached the root window's corner.
    await waitFor(`${client.name}: first picture`, async () => {
      if (pageErrors.length) throw new Error(`page error: ${pageErrors[0]}`);
      return page.evaluate(() => window.__slb.marks.picture !== null);
    }, { timeoutMs: CFG.connectMs, intervalMs: 50 });
    // Navigation start (performance.timeOrigin) to the first animation frame showing it.
    row.connectMs = await page.evaluate(() => window.__slb.marks.picture - performance.timeOrigin);
    phase('connect');
    const clock = await clockOffset(page);
    row.clockRttMs = clock.rtt;
    phase('clock');
    await sleep(CFG.warmMs);
    phase('warm');

    // Window: updates seen, probe latency, wire bytes.
    const s0 = await emu.call('stats');
    const cpu0 = groupCpuMs(proxyPgid);
    const vncCpu0 = groupCpuMs(vncPgid);
    const steps0 = content.motion ? content.motion.steps : null;
    await page.evaluate(() => { window.__slb.startWindow(); window.__slb.startProbe(); });
    const changes = [];
    const tEnd = Date.now() + CFG.windowMs;
    // One change per PROBE_MS slot, at a random point of the slot's first half: the probe then
    // meets every phase of the content's changes (the slideshow's 100 ms) and of the page's
    // animation frames (16.7 ms, when the instrument reads the canvas). At a fixed period, a
    // multiple of both, every change of a run met the same phase, and a run's latencies were
    // one draw of that lottery (e.g. 15-17 ms in one LAN run, 19-21 ms in the next).
    const tStart = Date.now();
    for (let slot = 0; ; slot++) {
      const at = tStart + slot * CFG.probeMs + Math.random() * (CFG.probeMs / 2);
      if (at >= tEnd) break;
      await sleep(Math.max(0, at - Date.now()));
      const c = probeSeq++ % PALETTE.length;
      const r = await xprobe.call(`root ${PALETTE[c].join(' ')}`);
      changes.push({ t: r.t, c });
    }
    await sleep(Math.max(0, tEnd - Date.now()));
    const win = await page.evaluate(() => window.__slb.stopWindow());
    const s1 = await emu.call('stats');
    const cpuMs = groupCpuMs(proxyPgid) - cpu0;
    const vncCpuMs = groupCpuMs(vncPgid) - vncCpu0;
    const secs = (win.t1 - win.t0) / 1000;
    row.updatesPerSec = win.changes / secs;
    row.wholePerSec = win.whole / secs;
    row.rafHz = win.sampled / secs;
    if (steps0 !== null) row.sourcePerSec = (content.motion.steps - steps0) / secs;
    row.identified = win.ids.filter((i) => i >= 0).length / Math.max(1, win.ids.length);
    row.downKiBs = (s1.down.bytes - s0.down.bytes) / 1024 / (s1.t - s0.t);
    row.upKiBs = (s1.up.bytes - s0.up.bytes) / 1024 / (s1.t - s0.t);
    row.downDropped = s1.down.dropped_packets - s0.down.dropped_packets;
    // The proxy's CPU over the window: % of one core, and ms per whole state the page saw.
    row.proxyCpuPct = cpuMs / (s1.t - s0.t) / 10;
    row.proxyCpuMsPerState = win.whole > 0 ? cpuMs / win.whole : null;
    // The VNC server's too (Xvnc: drawing the content, the same for both clients, and encoding
    // for this client: JPEG for noVNC, lossless for the gateway), and both per state seen.
    row.vncCpuPct = vncCpuMs / (s1.t - s0.t) / 10;
    row.totalCpuMsPerState = win.whole > 0 ? (cpuMs + vncCpuMs) / win.whole : null;
    phase('window');

    // Grace: the last change may still be on its way; stop waiting once it is on the canvas.
    const last = changes[changes.length - 1];
    const graceEnd = Date.now() + CFG.graceMs;
    while (Date.now() < graceEnd) {
      const seen = await page.evaluate(() => (window.__slb.probe.obs.at(-1) || null));
      if (seen && colourIndex(seen[1], seen[2], seen[3]) === last.c) break;
      await sleep(100);
    }
    const obs = (await page.evaluate(() => window.__slb.stopProbe()))
      .map(([t, r, g, b]) => [t - clock.offset, r, g, b]);
    row.latencies = probeLatencies(changes, obs, colourIndex).map((v) => (Number.isFinite(v) ? v : null));
    phase('grace');

    // In motion: PSNR of the canvas region against the best-matching reference state.
    row.motionPsnr = [];
    for (let k = 0; k < CFG.psnrSamples; k++) {
      await sleep(250);
      const b64 = await page.evaluate((r) => window.__slb.grab(...r), content.region);
      if (b64) row.motionPsnr.push(motionPsnr(Buffer.from(b64, 'base64'), content.refs, sig));
    }
    phase('psnr');

    // At rest: stop all motion, then how long until the canvas equals the X screen exactly.
    await page.evaluate(() => window.__slb.watchRest());
    paused = true; // resumed in `finally` whatever happens from here
    await content.pause();
    const tStop = Date.now();
    const shot = fs.readFileSync(await grabStableFull(xwork, tmp));
    await page.evaluate(([h1, h2]) => window.__slb.startRest(h1, h2), rgbHashes(shot));
    // Until exact, or the bound, or settled inexact: canvas unchanged for SETTLED_MS with
    // nothing queued on the link (a client that will not become exact, e.g. lossy JPEG kept).
    const restEnd = tStop + CFG.restMs;
    while (Date.now() < restEnd) {
      const st = await page.evaluate(() => window.__slb.restState());
      if (st && st.exactAt !== null) break;
      if (st && st.sinceChange > CFG.settledMs && (await emu.call('idle')).idle) {
        row.restSettled = true;
        break;
      }
      await sleep(100);
    }
    const rest = await page.evaluate(() => window.__slb.stopRest());
    row.restMs = rest.exactAt !== null ? Math.max(0, rest.exactAt - clock.offset - tStop) : null;
    // Inexact: by how much, counted now that the measurement is over.
    const diff = rest.exactAt !== null
      ? { diff: 0, sse: 0, box: null }
      : await page.evaluate((b64) => window.__slb.restDiff(b64), shot.toString('base64'));
    row.restDiffPx = diff.diff;
    row.restDiffBox = diff.box;
    if (diff.diff && env.SLB_DUMP === '1') await dumpRest(page, shot, row);
    phase('rest');
    row.restPsnr = diff.diff === 0 ? 99 : diff.sse !== null ? psnrFromSse(diff.sse, SCREEN.w * SCREEN.h * 3) : null;
    if (pageErrors.length) row.pageErrors = pageErrors;
  } catch (e) {
    row.error = e.message.split('\n')[0];
    log(`${link.name} ${content.name} ${client.name} run ${run}: FAILED: ${e.message}`);
    await page.screenshot({ path: path.join(OUT, 'logs', `failed-${link.name.replace('/', '_')}-${content.name}-${client.name}-${run}.png`) })
      .catch(() => {});
  } finally {
    await page.close().catch(() => {});
    if (paused) await content.resume();
  }
  // The next measurement starts on an empty link.
  await waitFor('the link to drain', async () => (await emu.call('idle')).idle, { timeoutMs: 20000, intervalMs: 100 })
    .catch((e) => log(`warning: ${e.message}`));
  await sleep(150);
  phase('drain');
  return row;
}

/** The two hashes the page's rest check computes (restHashes in instrument.js), of packed RGB. */
export function rgbHashes(rgb) {
  let h1 = 0x811c9dc5, h2 = 0x9747b28c;
  for (let j = 0; j + 2 < rgb.length; j += 3) {
    const v = rgb[j] | (rgb[j + 1] << 8) | (rgb[j + 2] << 16);
    h1 = Math.imul(h1 ^ v, 16777619);
    h2 = Math.imul(h2 + v, 0x9e3779b1) ^ (h2 >>> 15);
  }
  return [h1 >>> 0, h2 >>> 0];
}

/** SLB_DUMP=1: the canvas and the X screen of a measurement that ended inexact, as PNGs. */
async function dumpRest(page, shot, row) {
  const rgba = await page.evaluate(([w, h]) => window.__slb.grab(0, 0, w, h), [SCREEN.w, SCREEN.h]);
  const base = path.join(OUT, 'logs', `rest-${row.link.replace('/', '_')}-${row.content}-${row.client}-${row.run}`);
  const size = ['-size', `${SCREEN.w}x${SCREEN.h}`, '-depth', '8'];
  spawnSync('convert', [...size, 'rgba:-', `png:${base}-canvas.png`], { input: Buffer.from(rgba, 'base64') });
  spawnSync('convert', [...size, 'rgb:-', `png:${base}-x.png`], { input: shot });
}

async function grabStableFull(xh, tmp) {
  const file = path.join(tmp, 'full.rgb');
  let prev = null;
  const deadline = Date.now() + 3000;
  for (;;) {
    await xh.call(`grab 0 0 ${SCREEN.w} ${SCREEN.h} ${file}`);
    const cur = fs.readFileSync(file);
    if (prev && cur.equals(prev)) return file;
    if (Date.now() > deadline) throw new Error('the X screen did not settle after motion stopped');
    prev = cur;
    await sleep(40);
  }
}

export function summaryLine(row) {
  if (row.error) return `FAILED ${row.error}`;
  const lat = row.latencies.map((v) => (v === null ? Infinity : v));
  const f = (v) => (v === null || v === undefined ? '–' : Number.isFinite(v) ? v.toFixed(0) : 'never');
  const p50 = [...lat].sort((a, b) => a - b)[lat.length >> 1];
  return `upd/s ${row.updatesPerSec.toFixed(1)} whole/s ${row.wholePerSec.toFixed(1)} lat p50 ${f(p50)} ms ` +
    `shown ${lat.filter(Number.isFinite).length}/${lat.length} down ${row.downKiBs.toFixed(0)} KiB/s ` +
    `psnr ${median(row.motionPsnr)?.toFixed(1)} rest ${f(row.restMs)} ms (diff ${row.restDiffPx}) ` +
    `connect ${row.connectMs.toFixed(0)} ms raf ${row.rafHz.toFixed(0)} Hz drops ${row.downDropped}; phases ` +
    Object.entries(row.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(' ');
}
