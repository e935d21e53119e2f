// The slow-link benchmark's driver (run it through benches/slow_links.sh, which creates the
// network namespace and removes it again). noVNC 1.7 + websockify against wsvnc's gateway +
// viewer, one Xvnc desktop, one headless Chromium inside the namespace, emulated links.
// What is measured and how: benches/README.md, section "slow_links.sh".

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  CFG, CONTENTS, HERE, HOST_ADDR, HOST_IF, LINKS, NETNS, NS_ADDR, NS_IF, OUT, PYTHON, QUICK, WSVNC, clients, log,
} from './config.mjs';
import { BASE_COLOUR, Drag, POINTER, Slideshow, Terminal, prepareImages, sourceRate } from './content.mjs';
import { measure, signature, summaryLine } from './measure.mjs';
import { assertRunning, jsonLineProcess, setLogDir, stopAll, waitFor } from './procs.mjs';
import { aggregate, median, table } from './report.mjs';
import { checkNodeSide, launchBrowser, linkCheck, removeStaleXFiles, startServers, startXvnc } from './setup.mjs';

async function main() {
  const t0 = Date.now();
  fs.mkdirSync(OUT, { recursive: true });
  setLogDir(path.join(OUT, 'logs'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-slowlink-'));
  const rawPath = path.join(OUT, 'raw.jsonl');
  fs.writeFileSync(rawPath, '');
  checkNodeSide();
  const cls = clients();
  log(`${QUICK ? 'QUICK ' : ''}runs=${CFG.runs} window=${CFG.windowMs} ms, links ${LINKS.map((l) => l.name).join(' ')}, ` +
    `contents ${CONTENTS.join(' ')}, wsvnc ${WSVNC}`);
  const images = prepareImages(path.join(OUT, 'images'));
  let browser = null;
  const rows = [];
  const sources = {};
  try {
    // The link: emulator between the host and the browser's namespace (higher priority so
    // that its timing holds when the machine is busy).
    const emu = jsonLineProcess('linkemu', 'nice', ['-n', '-10', PYTHON, path.join(HERE, 'linkemu.py'),
      '--netns', NETNS, '--host-if', HOST_IF, '--ns-if', NS_IF, '--host-addr', HOST_ADDR, '--ns-addr', NS_ADDR]);
    await emu.call('stats', 20000);
    const x = await startXvnc();
    const xhelper = path.join(HERE, 'xhelper.py');
    const xprobe = jsonLineProcess('xprobe', PYTHON, [xhelper], { env: x.env });
    const xwork = jsonLineProcess('xwork', PYTHON, [xhelper], { env: x.env });
    await xprobe.call(`root ${BASE_COLOUR.join(' ')}`);
    await xprobe.call(`pointer ${POINTER.join(' ')}`);
    const servers = await startServers();
    // Every long-lived process must still run before each measurement: a crash (of wsvnc,
    // say) stops the run with its log instead of producing rows of failures.
    const infra = [emu, x.proc, xprobe, xwork, servers.ws, servers.gw];
    browser = await launchBrowser();
    const instrument = fs.readFileSync(path.join(HERE, 'instrument.js'), 'utf8');
    // One browser context per client for the whole run, so its HTTP cache holds the client's
    // page after the first load and later page loads cost (almost) nothing on slow links.
    const ctxs = new Map();
    for (const c of cls) {
      const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
      await ctx.addInitScript(instrument);
      ctxs.set(c.name, ctx);
    }
    const total = CONTENTS.length * LINKS.length * CFG.runs * cls.length;
    let done = 0;
    for (const name of CONTENTS) {
      const content = name === 'slideshow' ? new Slideshow(images)
        : name === 'terminal' ? new Terminal(tmp)
          : name === 'drag' ? new Drag(images) : null;
      if (!content) throw new Error(`CONTENTS: unknown content '${name}' (slideshow, terminal, drag)`);
      log(`content ${name}: ${content.describe()}`);
      await content.start(x, xwork, path.join(tmp, 'grab.rgb'));
      const rate = await sourceRate(xwork, path.join(tmp, 'grab.rgb'), content.region);
      sources[name] = `${rate.perSec.toFixed(1)} changes/s`;
      log(`content ${name}: region ${content.region.join(',')}, X screen changes ${rate.perSec.toFixed(1)}/s ` +
        `(sampled ${rate.grabsPerSec.toFixed(0)}/s), ${content.refs.length} reference states`);
      const sig = signature(content.region, content.refs);
      for (const link of LINKS) {
        await emu.call(`set ${link.rateBps} ${link.rttMs / 2} ${link.queue} ${link.mtu}`);
        if (!link.check) {
          link.check = await linkCheck(link);
          const hs = link.check.connect_ms;
          log(`link ${link.name}: TCP handshakes ${hs.map((v) => v.toFixed(1)).join(' ')} ms, goodput ` +
            `${link.check.mbit.toFixed(2)} Mbit/s`);
          link.label += `; measured: TCP handshake min ${hs[0].toFixed(1)} ms, goodput ` +
            `${link.check.mbit.toFixed(link.check.mbit < 10 ? 2 : 0)} Mbit/s`;
          await waitFor('the link to drain', async () => (await emu.call('idle')).idle, { timeoutMs: 20000 });
        }
        for (let run = 0; run < CFG.runs; run++) {
          const order = run % 2 ? [...cls].reverse() : cls;
          for (const client of order) {
            for (const p of infra) assertRunning(p);
            const proxyPgid = (client.name === 'wsvnc' ? servers.gw : servers.ws).child.pid;
            const vncPgid = x.proc.child.pid;
            const args = { ctx: ctxs.get(client.name), client, content, link, run, emu, xprobe, xwork, tmp, sig, proxyPgid, vncPgid };
            let row = await measure(args);
            if (!row.error && row.rafHz < CFG.minRafHz) {
              log(`${link.name} ${name} ${client.name}: page ran ${row.rafHz.toFixed(0)} animation frames/s ` +
                '(CPU starved by other load): repeating once');
              row = { ...(await measure(args)), starvedBefore: row.rafHz };
            }
            rows.push(row);
            fs.appendFileSync(rawPath, JSON.stringify(row) + '\n');
            done++;
            log(`[${done}/${total}] ${link.name} ${name} ${client.name} run ${run + 1}: ${summaryLine(row)}`);
          }
        }
      }
      await content.stop();
      if (content.motion) {
        const r = median(rows.filter((w) => w.content === name && w.sourcePerSec).map((w) => w.sourcePerSec));
        if (r !== null) sources[name] = `${r.toFixed(1)} steps/s`;
      }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopAll();
    removeStaleXFiles(); // an Xvnc that had to be SIGKILLed leaves its lock behind
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const groups = new Map();
  for (const key of new Set(rows.map((r) => `${r.link}|${r.content}|${r.client}`))) {
    groups.set(key, aggregate(rows.filter((r) => `${r.link}|${r.content}|${r.client}` === key)));
  }
  const secs = Math.round((Date.now() - t0) / 1000);
  const starved = rows.filter((r) => !r.error && r.rafHz < CFG.minRafHz).length;
  const repeated = rows.filter((r) => r.starvedBefore !== undefined).length;
  const head = `slow-link benchmark: ${QUICK ? 'QUICK, ' : ''}${CFG.runs} run(s) per cell, ${CFG.windowMs / 1000} s window, ` +
    `medians (latency percentiles pooled over runs); ${os.cpus().length} CPUs, load average ` +
    `${median(rows.map((r) => r.load))?.toFixed(1) ?? '–'} (median at measurement starts); run took ${secs} s; ` +
    `${repeated} measurement(s) repeated, ${starved} still CPU-starved (< ${CFG.minRafHz} frames/s); wsvnc = ${WSVNC}`;
  const text = head + '\n' + table(groups, { links: LINKS, contents: CONTENTS, sources }) + '\n';
  fs.writeFileSync(path.join(OUT, 'table.md'), text);
  console.log(text);
  log(`raw rows: ${rawPath}; table: ${path.join(OUT, 'table.md')}; logs: ${path.join(OUT, 'logs')}`);
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

main().catch(async (e) => {
  log(`FAILED: ${e.stack || e}`);
  await stopAll();
  process.exit(1);
});
