// Statistics and the table of the slow-link benchmark: from raw rows (one per measurement) to
// one Markdown table per link: content x metric, noVNC | wsvnc | wsvnc/noVNC.

export function median(xs) {
  const s = xs.filter((v) => v !== null && v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile; Infinity (never shown) sorts last. */
export function percentile(xs, p) {
  const s = xs.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  if (!s.length) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** PSNR in dB of an RGBA image against an RGB one of the same size (99 = identical). */
export function psnrRgbaRgb(rgba, rgb) {
  let sse = 0;
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    const a = rgba[i] - rgb[j], b = rgba[i + 1] - rgb[j + 1], c = rgba[i + 2] - rgb[j + 2];
    sse += a * a + b * b + c * c;
  }
  return psnrFromSse(sse, rgb.length);
}

export function psnrFromSse(sse, samples) {
  if (!sse) return 99;
  return Math.min(99, 10 * Math.log10((255 * 255 * samples) / sse));
}

/**
 * Small-change latency: for every probe change i (node wall-clock ms `t`, palette colour `c`),
 * the time until the canvas first showed change i or any later one (a later change replaces
 * the colour, so showing it also shows that the screen caught up). Infinity = never shown.
 * obs: [[node ms, r, g, b]] in time order; colourIndex maps an RGB to a palette index or -1.
 */
export function probeLatencies(changes, obs, colourIndex) {
  const seqOfColour = new Map(changes.map((ch, i) => [ch.c, i]));
  const seen = []; // [time, seq]
  for (const [t, r, g, b] of obs) {
    const c = colourIndex(r, g, b);
    const seq = c >= 0 ? seqOfColour.get(c) : undefined;
    if (seq !== undefined && t >= changes[seq].t) seen.push([t, seq]);
  }
  return changes.map((ch, i) => {
    for (const [t, seq] of seen) if (seq >= i) return t - ch.t;
    return Infinity;
  });
}

// ------------------------------------------------------------------ table

const fmt = (v, digits) => {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v === Infinity) return 'never';
  return v.toFixed(digits);
};

function ratio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined) return '–';
  if (!Number.isFinite(a) || !Number.isFinite(b)) return '–';
  if (b === 0) return a === 0 ? '1.00' : '–';
  return (a / b).toFixed(2);
}

/**
 * Aggregates rows (see bench.mjs measure()) of one link x content x client:
 * medians of the per-run values; latency percentiles and shown counts pooled over runs.
 */
export function aggregate(rows) {
  const ok = rows.filter((r) => !r.error);
  const lat = ok.flatMap((r) => r.latencies.map((v) => (v === null ? Infinity : v)));
  const restExact = ok.filter((r) => r.restMs !== null);
  return {
    runs: rows.length, failed: rows.length - ok.length,
    errors: rows.filter((r) => r.error).map((r) => r.error),
    updates: median(ok.map((r) => r.updatesPerSec)),
    whole: median(ok.map((r) => r.wholePerSec)),
    p50: percentile(lat, 50), p95: percentile(lat, 95),
    shown: lat.length ? `${lat.filter(Number.isFinite).length}/${lat.length}` : '–',
    down: median(ok.map((r) => r.downKiBs)), up: median(ok.map((r) => r.upKiBs)),
    psnr: median(ok.flatMap((r) => r.motionPsnr)),
    restMs: restExact.length * 2 > ok.length ? median(ok.map((r) => (r.restMs === null ? Infinity : r.restMs))) : Infinity,
    restExact: `${restExact.length}/${ok.length}`,
    restPsnr: median(ok.map((r) => r.restPsnr)),
    connectMs: median(ok.map((r) => r.connectMs)),
    rafHz: median(ok.map((r) => r.rafHz)),
    drops: median(ok.map((r) => r.downDropped)),
    cpuPct: median(ok.map((r) => r.proxyCpuPct).filter(Number.isFinite)),
    cpuPerState: median(ok.map((r) => r.proxyCpuMsPerState).filter(Number.isFinite)),
    vncCpuPct: median(ok.map((r) => r.vncCpuPct).filter(Number.isFinite)),
    totalCpuPerState: median(ok.map((r) => r.totalCpuMsPerState).filter(Number.isFinite)),
  };
}

/** METRICS: label, key, digits, shown for which contents (null = all). */
const METRICS = [
  ['updates seen /s (canvas region changes)', 'updates', 1, null],
  ['whole states seen /s (identified frames)', 'whole', 1, null],
  ['small change → pixel p50 ms', 'p50', 0, null],
  ['small change → pixel p95 ms', 'p95', 0, null],
  ['small changes shown (pooled)', 'shown', null, null],
  ['wire KiB/s to browser', 'down', 0, null],
  ['wire KiB/s from browser', 'up', 1, null],
  ['PSNR in motion dB (median)', 'psnr', 1, null],
  ['at rest: exact after ms (median)', 'restMs', 0, null],
  ['at rest: runs exact within bound', 'restExact', null, null],
  ['at rest: PSNR at end dB', 'restPsnr', 1, null],
  ['open page → first picture ms (page cached)', 'connectMs', 0, null],
  ['page animation frames /s (60 = not starved)', 'rafHz', 0, null],
  ['proxy CPU % of a core (websockify / gateway)', 'cpuPct', 1, null],
  ['proxy CPU ms per whole state seen', 'cpuPerState', 1, null],
  ['VNC server CPU % of a core (Xvnc: drawing + encoding)', 'vncCpuPct', 1, null],
  ['proxy + VNC server CPU ms per whole state seen', 'totalCpuPerState', 1, null],
];

export function table(groups, { links, contents, sources }) {
  const out = [];
  for (const link of links) {
    out.push(`\n### ${link.label}\n`);
    out.push('| content | metric | noVNC + websockify | wsvnc gateway + viewer | wsvnc/noVNC |');
    out.push('|---|---|---:|---:|---:|');
    for (const content of contents) {
      const n = groups.get(`${link.name}|${content}|novnc`);
      const w = groups.get(`${link.name}|${content}|wsvnc`);
      if (!n && !w) continue;
      const src = sources[content];
      const label = src ? `${content} (X: ${src})` : content;
      let first = true;
      for (const [name, key, digits, only] of METRICS) {
        if (only && !only.includes(content)) continue;
        const a = n ? n[key] : null;
        const b = w ? w[key] : null;
        const show = (v) => (digits === null ? (v ?? '–') : fmt(v, digits));
        const r = digits === null ? '' : ratio(b, a);
        out.push(`| ${first ? label : ''} | ${name} | ${show(a)} | ${show(b)} | ${r} |`);
        first = false;
      }
      for (const [who, g] of [['noVNC', n], ['wsvnc', w]]) {
        if (g && g.failed) out.push(`| | ${who}: ${g.failed} of ${g.runs} runs failed: ${g.errors[0]} | | | |`);
      }
    }
  }
  return out.join('\n');
}
