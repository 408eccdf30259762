// Debian's Chromium, headless, driven by playwright-core: the browser every interop test
// uses. Found at $CHROMIUM or /usr/bin/chromium. The virtual authenticator below is also set
// up by sdk/js's browser tests, on purpose: the two packages share no test code.
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

// Gives `page` (of `context`) a CDP virtual authenticator — a platform authenticator with
// resident keys, user verification and the PRF extension — that approves every ceremony.
export async function addPrfAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      ctap2Version: "ctap2_1",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      hasPrf: true,
    },
  });
  return cdp;
}
