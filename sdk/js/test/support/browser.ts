/**
 * Headless Chromium through playwright-core, and a node serving the SDK bundle and a page at
 * the same origin (`--site`), so pages use the API without CORS set-up. A missing Chromium fails
 * the test: a browser test that skips proves nothing.
 */

import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { type RunningNode, startNode } from "./node.js";

const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";

/** A page that loads the bundle as `window.sdk` and sets `window.sdkReady`. */
export const SDK_PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
import * as sdk from "./blindstore.js";
window.sdk = sdk;
window.sdkReady = true;
</script>`;

/**
 * Launches Debian's headless Chromium (a missing one fails the test). Playwright turns the
 * back/forward cache off; `backForwardCache` leaves it on, as in the browsers people use.
 */
export async function launchChromium(options: { backForwardCache?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install it or set CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    ...(options.backForwardCache === true ? { ignoreDefaultArgs: ["--disable-back-forward-cache"] } : {}),
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

export interface BrowserSite {
  browser: Browser;
  node: RunningNode;
  stop(): Promise<void>;
}

/** Starts a node serving the bundle and `pages` (file name → HTML), and launches Chromium. */
export async function startBrowserSite(pages: Record<string, string> = { "index.html": SDK_PAGE }): Promise<BrowserSite> {
  const site = mkdtempSync(join(tmpdir(), "blindstore-sdk-site-"));
  // The self-contained browser build: blindstore.js, reader.js and their chunks (OPAQUE's included).
  cpSync(new URL("../../dist/browser", import.meta.url), site, { recursive: true });
  for (const [name, html] of Object.entries(pages)) {
    writeFileSync(join(site, name), html);
  }
  const node = await startNode(["--site", site]);
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (error) {
    await node.stop();
    rmSync(site, { recursive: true, force: true });
    throw error;
  }
  return {
    browser,
    node,
    stop: async () => {
      await browser.close();
      await node.stop();
      rmSync(site, { recursive: true, force: true });
    },
  };
}

/** How long any one step of a page may take. */
export const STEP_MS = 30_000;

/**
 * Opens the site's SDK page in `page` (each step bounded by `STEP_MS`), with `initScript` run
 * before the page's own, and waits for the bundle to be loaded as `window.sdk`.
 */
export async function openSdkPage(site: BrowserSite, page: Page, initScript?: string | (() => void)): Promise<Page> {
  page.setDefaultTimeout(STEP_MS);
  if (initScript !== undefined) {
    await page.addInitScript(initScript);
  }
  await page.goto(`${site.node.url}/`);
  await page.waitForFunction(() => (window as unknown as { sdkReady?: boolean }).sdkReady === true);
  return page;
}
