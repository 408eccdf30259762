// Registers a passkey and logs in with it in headless Chromium (Debian's `chromium`, driven
// by playwright-core) against a running Blindstore node, with a CDP virtual authenticator
// that supports PRF. Used by the Rust test suite:
//
//   node passkeys.mjs <base-url> <zone> <account> <session-token> <step-up> <screenshot-dir>
//
// <base-url> must be http://localhost:<port> (an IP address cannot be a passkey relying
// party), the zone's passkey settings naming that origin. The page is served at the node's
// own origin by request interception, so it calls the API same-origin.
// Prints one JSON line with what happened; exit status 1 on any error. Chromium is found at
// $CHROMIUM or /usr/bin/chromium.
import { readFileSync } from "node:fs";
import { addPrfAuthenticator, deadline, launchChromium } from "./browser.mjs";

const [base, zone, account, token, stepUp, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node passkeys.mjs <base-url> <zone> <account> <session-token> <step-up> <screenshot-dir>");
  process.exit(1);
}
deadline("passkeys.mjs", 120);

const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 520 } });
  const page = await context.newPage();
  await addPrfAuthenticator(context, page);
  const html = readFileSync(new URL("./passkeys.html", import.meta.url));
  await page.route(`${base}/passkeys.html`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }),
  );
  // Every request body the page sends, to prove the PRF output never leaves it.
  const sent = [];
  page.on("request", (request) => sent.push(request.postData() || ""));
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));

  await page.goto(`${base}/passkeys.html`);
  const registered = await page.evaluate(
    ([zone, token, stepUp]) => window.registerPasskey(zone, token, stepUp, "the budget key"),
    [zone, token, stepUp],
  );
  await page.screenshot({ path: `${shots}/passkey-registered.png` });
  const loggedIn = await page.evaluate(([zone, account]) => window.logInWithPasskey(zone, account), [zone, account]);
  await page.screenshot({ path: `${shots}/passkey-login.png` });
  const steppedUp = await page.evaluate(
    ([zone, account, token]) => window.stepUpWithPasskey(zone, account, token),
    [zone, account, token],
  );
  const prfSent = sent.some((body) => body.includes(registered.prf) || body.includes(loggedIn.prf));
  console.log(
    JSON.stringify({
      registered,
      logged_in: loggedIn,
      step_up: steppedUp,
      same_prf: registered.prf === loggedIn.prf,
      prf_sent: prfSent,
      requests: sent.length,
      page_errors: errors,
    }),
  );
} finally {
  await browser.close();
}
