// Debian's Chromium, headless, driven by playwright-core (machine-facts.md): a fresh profile per launch,
// and the flags that keep it from calling home on a closed network. Shared by the dashboard's lab test
// and bench:observe.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Headless {
  browser: BrowserContext;
  close(): Promise<void>;
}

/** Launches headless Chromium with its own throwaway profile; close() removes the profile. */
export async function launchChromium(): Promise<Headless> {
  const profile = mkdtempSync(join(tmpdir(), 'shoal-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export type { Browser };

/** `bin/shoal dashboard --listen 127.0.0.1:0` with a context; resolves with the URL it printed. */
export function startDashboardProcess(shoal: string, contextPath: string, timeoutMs = 60_000): Promise<{ proc: ChildProcess; url: string; out: () => string }> {
  return new Promise((res, rej) => {
    const proc = spawn(shoal, ['dashboard', '--listen', '127.0.0.1:0'], {
      env: { ...process.env, SHOAL_CONTEXT: contextPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => rej(new Error(`shoal dashboard printed no URL in ${timeoutMs / 1000} s: ${out}`)), timeoutMs);
    const take = (d: Buffer) => {
      out += d.toString();
      const m = /open (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ proc, url: m[1]!, out: () => out });
      }
    };
    proc.stdout!.on('data', take);
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`shoal dashboard exited (${code}): ${out}`));
    });
  });
}

/** Stops a process this module started: SIGTERM, then SIGKILL after 5 s. */
export async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (proc?.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  process.kill(proc.pid, 'SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGKILL');
}
