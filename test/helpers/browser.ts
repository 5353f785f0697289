import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { Test } from 'tap';

/** The system Chromium (Debian package `chromium`; test/setup/tools.sh installs it). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Starts headless Chromium with a fresh profile in a temp dir; the test's teardown closes it and removes the profile. */
export async function launchBrowser(t: Test): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'meridian-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    timeout: 30_000,
    protocolTimeout: 30_000,
    // Tests run as root, where Chromium's sandbox cannot start.
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  t.teardown(async () => {
    await browser.close().catch(() => undefined);
    await rm(profile, { recursive: true, force: true });
  });
  return browser;
}

/** What went wrong in a page: console errors, uncaught exceptions, failed or refused requests. */
export interface PageProblems {
  readonly console: string[];
  readonly errors: string[];
  readonly requests: string[];
  /** Everything, one line each. */
  all(): string[];
}

/** A new page whose problems are collected from the start. */
export async function watchedPage(browser: Browser, width = 1280, height = 900): Promise<{ page: Page; problems: PageProblems }> {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  const problems: PageProblems = {
    console: [],
    errors: [],
    requests: [],
    all() {
      return [...this.console.map((c) => `console: ${c}`), ...this.errors.map((e) => `page error: ${e}`), ...this.requests.map((r) => `request: ${r}`)];
    },
  };
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warn') problems.console.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.errors.push(err instanceof Error ? err.message : String(err)));
  page.on('requestfailed', (req) => problems.requests.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText ?? 'failed'}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.requests.push(`${res.request().method()} ${res.url()}: ${res.status()}`);
  });
  return { page, problems };
}

/** The text of the first element matching `selector`, or null when there is none. */
export function textOf(page: Page, selector: string): Promise<string | null> {
  return page.$$eval(selector, (nodes) => nodes[0]?.textContent ?? null);
}
