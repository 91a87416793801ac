// `shoal dashboard` against a real lab (3 managers + 2 workers), looked at with real headless Chromium
// (Debian's chromium, driven by playwright-core): the page shows the five nodes and the service's tasks;
// scaling from the page (through its confirm dialog) changes what `shoal service ls` says; killing a
// worker's daemon with SIGKILL turns its column down within the node-down time. A screenshot of every
// view goes to test-artifacts/dashboard/ (gitignored).
import assert from 'node:assert/strict';
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';
import { type Headless, launchChromium, startDashboardProcess, stopProcess } from '../dashboard/browser.ts';

const NAME = 'dbt';
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const ARTIFACTS = join(REPO, 'test-artifacts', 'dashboard');
/** Dispatcher heartbeat (cluster default) and the heartbeats a node may miss before it is down (manager/dispatcher/liveness.ts). */
const HEARTBEAT_MS = 1_000;
const MISSED = 3;
/** Slack on top of the node-down time for this loaded 2-core machine (a leader tick, the event, the refetch, a frame). */
const SLACK_MS = 7_000;

describe('the web dashboard on a lab, in headless Chromium', { concurrency: false }, () => {
  let c: ClusterLab | undefined;
  let dash: { proc: ChildProcess; url: string; out: () => string } | undefined;
  let chrome: Headless | undefined;
  let page: Page;
  let unhook: () => void = () => {};

  const sh = (...args: string[]) =>
    new Promise<string>((res, rej) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c!.contextPath }, timeout: 90_000 }, (e, out, err) =>
        e ? rej(new Error(`shoal ${args.join(' ')}: ${err}${out}`)) : res(String(out)),
      );
    });
  const shot = async (view: string) => page.screenshot({ path: join(ARTIFACTS, `${view}.png`), fullPage: true });
  const view = async (hash: string, selector: string) => {
    await page.goto(new URL(`/#/${hash}`, dash!.url).href);
    await page.waitForSelector(selector, { timeout: 30_000 });
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    mkdirSync(ARTIFACTS, { recursive: true });
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2 });
    await sh('service', 'create', '--name', 'web', '--replicas', '4', '-p', '8080:80', 'nginx:1.25');
    dash = await startDashboardProcess(SHOAL, c.contextPath);
    chrome = await launchChromium();
    page = await chrome.browser.newPage();
  });

  after(async () => {
    await chrome?.close();
    await stopProcess(dash?.proc);
    await c?.down();
    unhook();
  });

  it('shows the five nodes, the managers and the leader, and the service’s running tasks', async () => {
    await page.goto(dash!.url);
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar (303 to /)');
    await page.waitForFunction(() => document.querySelectorAll('.node-col[data-node-id]').length === 5, null, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelectorAll('.task[data-service="web"][data-state="running"]').length === 4, null, { timeout: 30_000 });
    const hosts = await page.$$eval('.node-col[data-node-id]', (cols) => cols.map((c) => (c as HTMLElement).dataset.node).sort());
    assert.deepEqual(hosts, ['h1', 'h2', 'h3', 'h4', 'h5']);
    assert.equal(await page.locator('.node-col[data-role="manager"]').count(), 3);
    assert.equal(await page.locator('.node-col .leader').count(), 1, 'exactly one leader is marked');
    assert.equal(await page.getAttribute('[data-link]', 'data-link'), 'live', 'the server follows the event stream');
    await shot('map');
  });

  it('refuses anyone without the session: the printed link is spent, and no cookie means 401', async () => {
    const again = await fetch(dash!.url, { redirect: 'manual' });
    assert.equal(again.status, 401);
    const page2 = await fetch(new URL('/', dash!.url));
    assert.equal(page2.status, 401);
  });

  it('scales the service from the page, through the confirm dialog, and `service ls` agrees', async () => {
    await view('services', 'tr[data-service="web"]');
    assert.equal((await page.textContent('tr[data-service="web"] .replicas'))?.trim(), '4/4');
    await page.click('tr[data-service="web"] button[data-action="scale"]');
    await page.waitForSelector('.dialog[data-dialog="scale"]');
    await page.fill('#dialog-input', '7');
    await shot('scale-dialog');
    await page.click('.dialog button.confirm');
    await page.waitForSelector('.dialog', { state: 'detached', timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('tr[data-service="web"] .replicas')?.textContent?.trim() === '7/7', null, { timeout: 60_000 });
    const ls = await sh('service', 'ls');
    assert.match(ls, /web\s+replicated\s+7\/7\s/);
    await shot('services');
  });

  it('shows the service page, the nodes, the events and Raft on every manager', async () => {
    await view('services', 'tr[data-service="web"] a');
    await page.click('tr[data-service="web"] a');
    await page.waitForSelector('.view.service[data-service="web"]');
    await page.waitForFunction(() => document.querySelectorAll('.task-table tr[data-state="running"]').length === 7, null, { timeout: 30_000 });
    await page.waitForSelector('figure.chart[data-chart="cpu"]');
    await shot('service');

    await view('nodes', '.view.nodes tr[data-node="h5"]');
    assert.equal(await page.locator('.view.nodes tbody tr').count(), 5);
    await shot('nodes');

    await view('events', '.feed li[data-type="service"]');
    const scaled = await page.locator('.feed li[data-type="service"][data-action="update"]').count();
    assert.ok(scaled >= 1, 'the scale is in the events feed');
    await shot('events');

    await view('raft', '.view.raft tr[data-manager]');
    await page.waitForFunction(() => document.querySelectorAll('.view.raft tr[data-manager]').length === 3, null, { timeout: 30_000 });
    assert.equal(await page.locator('.view.raft tr[data-role="leader"]').count(), 1);
    await shot('raft');
  });

  it('drains and activates a node from the nodes page', async () => {
    await view('nodes', '.view.nodes tr[data-node="h4"] button[data-action="drain"]');
    await page.click('.view.nodes tr[data-node="h4"] button[data-action="drain"]');
    await page.click('.dialog button.confirm');
    await page.waitForSelector('.view.nodes tr[data-node="h4"][data-availability="drain"]', { timeout: 30_000 });
    const inspect = JSON.parse(await sh('node', 'inspect', 'h4')) as { spec: { availability: string } }[];
    assert.equal(inspect[0]!.spec.availability, 'drain');
    await page.click('.view.nodes tr[data-node="h4"] button[data-action="activate"]');
    await page.click('.dialog button.confirm');
    await page.waitForSelector('.view.nodes tr[data-node="h4"][data-availability="active"]', { timeout: 30_000 });
  });

  it('turns a worker’s column down within the node-down time when its daemon is killed', async (t) => {
    await view('map', '.node-col[data-node="h5"][data-state="ready"]');
    const t0 = Date.now();
    c!.killDaemon('h5', 'SIGKILL');
    const limit = HEARTBEAT_MS * MISSED + SLACK_MS;
    await page.waitForSelector('.node-col[data-node="h5"][data-state="down"]', { timeout: limit });
    const took = Date.now() - t0;
    assert.ok(took <= limit, `down after ${took} ms`);
    t.diagnostic(`h5 column down ${took} ms after SIGKILL (node-down time ${HEARTBEAT_MS * MISSED} ms)`);
    // The page still shows the other four nodes as ready.
    assert.equal(await page.locator('.node-col[data-node-id][data-state="ready"]').count(), 4);
    await shot('map-node-down');
    await waitFor(
      async () =>
        (await c!.nodes()).some(
          (n: { description: { hostname: string }; status: { state: string } }) => n.description.hostname === 'h5' && n.status.state === 'down',
        ),
      5_000,
      'the store agrees h5 is down',
    );
  });
});
