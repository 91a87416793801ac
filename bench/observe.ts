// `npm run bench:observe`: what seeing the cluster costs, on a real 3-manager + 2-worker lab (test
// executor: no containers, so the figures are the control plane's and the dashboard's, not the engine's),
// every daemon with --metrics-addr, `bin/shoal dashboard` as a user runs it, and Debian's headless
// Chromium looking at it:
//
//   1. store change → browser DOM: scale a service through the control API (one POST per sample, 40
//      samples, alternating replica counts) and time until the services table in the page shows the new
//      desired count (a MutationObserver in the page, installed before the POST, stamps the moment).
//      Baseline in the same run: the POST's own answer (the write committed and applied on the leader).
//   2. first render: a fresh page load until every task box is on the cluster map, with 1,000 tasks;
//      baseline: the same with the few tasks of step 1.
//   3. /metrics scrape time on the leader with 10,000 tasks (20 scrapes; baseline: with 1,000 tasks).
//   4. autoscaling: load start → scaled out and load stop → scaled back in, on a separate engine lab
//      (bench/autoscale.ts; real containers burning CPU).
//
// One figure per line, with its unit and goal. The lab, the dashboard and Chromium are removed at the
// end, also on failure.
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { ClusterLab, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { type Headless, launchChromium, startDashboardProcess, stopProcess } from '../test/dashboard/browser.ts';
import { autoscaleBench } from './autoscale.ts';
import { summarize } from './stats.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const NAME = 'dbb';
const METRICS_PORT = 9323;
const SAMPLES = 40;
const TEN_K_WAIT_MS = 8 * 60_000;

const ms = (v: number) => `${v.toFixed(1)} ms`;

function sh(ctx: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: ctx }, timeout: 600_000 }, (e, out, err) =>
      e ? rej(new Error(`shoal ${args.join(' ')}: ${err}${out}`)) : res(String(out)),
    );
  });
}

/**
 * Installs an observer in the page that resolves (window.__seen) when `selector`'s text ends with `suffix`.
 * Sent as source text: tsx would wrap a named function in a helper the page does not have.
 */
async function armObserver(page: Page, selector: string, suffix: string): Promise<void> {
  await page.evaluate(`(() => {
    const sel = ${JSON.stringify(selector)}, suf = ${JSON.stringify(suffix)};
    window.__seen = new Promise((res) => {
      const check = () => (document.querySelector(sel)?.textContent ?? '').trim().endsWith(suf);
      if (check()) return res(Date.now());
      const mo = new MutationObserver(() => { if (check()) { mo.disconnect(); res(Date.now()); } });
      mo.observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  })()`);
}

async function main(): Promise<void> {
  const unhook = cleanupOnExit(NAME);
  let c: ClusterLab | undefined;
  let dash: Awaited<ReturnType<typeof startDashboardProcess>> | undefined;
  let chrome: Headless | undefined;
  try {
    const t0 = performance.now();
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, daemonArgs: (h) => ['--metrics-addr', `${h.ip}:${METRICS_PORT}`] });
    const lab = c;
    console.error(`lab ${NAME} up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await sh(lab.contextPath, ['service', 'create', '--name', 'obs', '--replicas', '2', 'nginx:1.25']);
    dash = await startDashboardProcess(SHOAL, lab.contextPath);
    chrome = await launchChromium();
    const page = await chrome.browser.newPage();
    const origin = new URL(dash.url).origin;
    await page.goto(dash.url); // the one-time link: the browser keeps the session cookie
    await page.goto(`${origin}/#/services`);
    await page.waitForSelector('tr[data-service="obs"] .replicas', { timeout: 60_000 });

    // 1. Store change → DOM; baseline: the same request's own answer (the control API's write latency).
    const dom: number[] = [];
    const write: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const target = 3 + (i % 2); // 3, 4, 3, 4, …: every sample is a real change
      await armObserver(page, 'tr[data-service="obs"] .replicas', `/${target}`);
      const start = Date.now();
      await lab.control('POST', '/v1/services/obs/scale', { replicas: target });
      write.push(Date.now() - start);
      const seen = (await page.evaluate('window.__seen')) as number;
      dom.push(seen - start);
    }
    const d = summarize(dom);
    const a = summarize(write);
    console.log(`store change → browser DOM p50: ${ms(d.p50)} (goal ≤ 250 ms; n=${d.n})`);
    console.log(`store change → browser DOM p99: ${ms(d.p99)} (goal ≤ 1000 ms)`);
    console.log(`baseline: the scale request answered (control-API write) p50: ${ms(a.p50)}, p99: ${ms(a.p99)}`);

    // 2. First render, few tasks (baseline) and 1,000 tasks.
    const firstRender = async (tasks: number, runs = 5): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < runs; i++) {
        const p = await chrome!.browser.newPage();
        const s = performance.now();
        await p.goto(`${origin}/#/map`);
        await p.waitForFunction((n) => document.querySelectorAll('.task').length >= n, tasks, { timeout: 120_000, polling: 'raf' });
        out.push(performance.now() - s);
        await p.close();
      }
      return out;
    };
    const running = async (svc: string): Promise<number> =>
      ((await lab.control('GET', `/v1/services/${svc}`).catch(() => null)) as { replicas?: { running: number } } | null)?.replicas?.running ?? -1;
    const fewTasks = ((await lab.control('GET', '/v1/tasks')) as unknown[]).length;
    const few = summarize(await firstRender(fewTasks));
    await sh(lab.contextPath, ['service', 'create', '--detach', '--name', 'big', '--replicas', String(1000 - fewTasks), 'nginx:1.25']);
    await waitFor(async () => (await running('big')) >= 1000 - fewTasks, 300_000, '1,000 tasks running', 500);
    await page.goto(`${origin}/#/services`); // the open page follows along; first render is measured on fresh pages
    const big = summarize(await firstRender(1000));
    console.log(`dashboard first render, 1,000 tasks: ${ms(big.p50)} median of ${big.n} (goal ≤ 2000 ms)`);
    console.log(`baseline: first render, ${fewTasks} tasks: ${ms(few.p50)} median of ${few.n}`);
    await page.close();

    // 3. /metrics scrape on the leader: 1,000 tasks (baseline), then 10,000.
    const leaderAddr = async () => {
      const nodes = (await lab.control('GET', '/v1/nodes')) as { managerStatus: { leader: boolean } | null; status: { addr: string } }[];
      return nodes.find((n) => n.managerStatus?.leader)!.status.addr;
    };
    const scrape = async (n = 20): Promise<number[]> => {
      const ip = await leaderAddr();
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        const r = await fetch(`http://${ip}:${METRICS_PORT}/metrics`);
        const text = await r.text();
        if (!r.ok || !text.includes('# HELP')) throw new Error(`/metrics on ${ip}: HTTP ${r.status}`);
        out.push(performance.now() - s);
      }
      return out;
    };
    const m1k = summarize(await scrape());
    console.log(`baseline: /metrics scrape on the leader, 1,000 tasks: p50 ${ms(m1k.p50)}, p99 ${ms(m1k.p99)}`);
    // The dashboard stays open with 10,000 tasks coming: its server follows the events like any client.
    await lab.control('POST', '/v1/services/big/scale', { replicas: 10_000 - fewTasks });
    // On a loaded machine the agents may take long to start 9,000 tasks: after TEN_K_WAIT_MS the scrape is
    // measured with what runs by then, and the figure says how many tasks that was.
    const reached = await waitFor(async () => (await running('big')) >= 10_000 - fewTasks, TEN_K_WAIT_MS, '10,000 tasks running', 2_000).then(
      () => true,
      () => false,
    );
    const objects = ((await lab.control('GET', '/v1/tasks')) as unknown[]).length;
    const runningNow = (await running('big')) + fewTasks;
    const m10k = summarize(await scrape());
    const label = reached ? '10,000 tasks' : `${objects} tasks (${runningNow} running; 10,000 not reached in ${TEN_K_WAIT_MS / 60_000} min)`;
    console.log(`/metrics scrape on the leader, ${label}: p50 ${ms(m10k.p50)}, p99 ${ms(m10k.p99)} (goal ≤ 500 ms)`);

    console.log(`machine load average (1 min) at the end: ${loadavg()[0]!.toFixed(1)} on 2 cores (figures above include waiting for a core)`);
  } finally {
    await chrome?.close();
    await stopProcess(dash?.proc);
    await c?.down().catch((e: Error) => console.error(`lab down: ${e.message}`));
    unhook();
  }
  // 4. Autoscaling (load start → scaled out, load stop → scaled back in): it needs real containers
  // burning CPU, so it runs on its own 1+2 engine lab after this one is gone (bench/autoscale.ts).
  await autoscaleBench();
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench:observe failed: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);
