// Debian's Chromium, headless, driven by playwright-core: the browser every interop test
// uses. Found at $CHROMIUM or /usr/bin/chromium.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

// Exits the process with an error after `seconds`, whatever hangs.
export function deadline(script, seconds) {
  setTimeout(() => {
    console.error(`${script}: timed out after ${seconds} s`);
    process.exit(1);
  }, seconds * 1000).unref();
}
