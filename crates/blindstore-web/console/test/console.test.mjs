// The admin console as an operator meets it, in Debian's headless Chromium (playwright-core)
// against a real cluster started here: three nodes and a gateway. The admin credential is
// rotated with the CLI first, as an operator sets a cluster up; then, in the page served by
// node 1: sign in, every view (screenshot, axe), a quota change, a drain watched to the end
// and cancelled, credential rotations, the banner when the node does not answer, a node
// killed and seen unreachable, and a removal confirmed past the three-voter warning. Last, the
// console served by the gateway, and by a phone-sized browser.
//
// The steps share one cluster and run in order; each waits for what it needs with a deadline.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
// Chromium as every browser test of the project launches it (sdk/interop, whose packages
// scripts/test.sh installs).
import { launchChromium } from "../../../../sdk/interop/browser.mjs";
import { axeViolations } from "./support/axe.mjs";
import { api, cli, eventually, newChain, putChunks, startCluster } from "./support/cluster.mjs";
import { PHONE, confirmDialog, memberCell, openView, shots, signIn, watchedContext } from "./support/page.mjs";

describe("the admin console", { timeout: 240_000 }, () => {
  let cluster;
  let browser;
  let context;
  let page;
  let node1;
  /** The admin token in force (rotated with the CLI, then in the page). */
  let admin;
  let metricsToken;
  let photos;
  const problems = [];

  const noAxeViolations = async (where, selector = "body") => {
    const violations = await axeViolations(page, selector);
    assert.deepEqual(violations, [], `axe on ${where}:\n${violations.join("\n")}`);
  };
  /** The leader's id and URL, and a live follower's URL. */
  const roles = async () => {
    const leader = (await api(node1, "GET", "/v1/health")).body.leader;
    const live = await Promise.all(cluster.nodes.filter((n) => n.running).map(async (n) => [(await api(n.url, "GET", "/v1/health")).body.node_id, n.url]));
    return { leader, at: live.find(([id]) => id === leader)[1], follower: live.find(([id]) => id !== leader)[1] };
  };
  const memberIds = () => page.$$eval("table.members tbody tr", (rows) => rows.map((r) => Number(r.dataset.node)));

  before(async () => {
    cluster = await startCluster(["--repair-interval", "300ms"]);
    node1 = cluster.nodes[0].url;
    // Cluster credentials need every member's build to have them: the cluster's version rises
    // once the members told the leader their levels.
    await eventually("cluster version 3", async () => (await api(node1, "GET", "/v1/health")).body.cluster_version >= 3, { timeout: 30_000 });
    // The operator makes the cluster's admin credential: from then on the nodes' own
    // --admin-token is refused everywhere.
    const out = join(cluster.dir, "credentials");
    await cli(["cluster", "admin-token", "rotate", "--url", node1, "--admin-token", cluster.adminToken, "--out", out]);
    admin = /^admin_token=(\S+)$/m.exec(readFileSync(out, "utf8"))[1];
    await eventually("the rotated admin token accepted by every node", async () => {
      for (const n of cluster.nodes) if ((await api(n.url, "GET", "/v1/admin/zones", { token: admin })).status !== 200) return false;
      return true;
    });
    assert.equal((await api(node1, "GET", "/v1/admin/zones", { token: cluster.adminToken })).status, 401, "the start-up token is retired");

    // Data to look at: two zones, chunks (some read several times), a chain with entries.
    for (const zone of ["photos", "notes"]) assert.equal((await api(node1, "PUT", `/v1/admin/zones/${zone}`, { token: admin })).status, 201);
    photos = await putChunks(node1, "photos", 36);
    await putChunks(cluster.nodes[1].url, "notes", 8);
    for (const [i, times] of [[0, 9], [1, 6], [2, 4], [3, 2]]) {
      for (let n = 0; n < times; n++) assert.equal((await api(node1, "GET", `/v1/zones/photos/chunks/${photos[i]}`)).status, 200);
    }
    const chain = await newChain(node1, "photos");
    await chain.append(12);
    cluster.chain = chain;

    browser = await launchChromium();
    context = await watchedContext(browser, problems);
    await context.grantPermissions(["clipboard-read", "clipboard-write"]);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  it("signs in with the admin token only: a wrong one is refused, nothing is kept beyond the tab", async () => {
    await page.goto(`${node1}/admin/`);
    await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
    await noAxeViolations("the sign-in form");
    await page.fill("#token", "not-the-token-0123456789");
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#login-error:not([hidden])", { timeout: 10_000 });
    assert.match(await page.textContent("#login-error"), /the token was refused/i);
    // The start-up token was retired by the rotation: refused too.
    await page.fill("#token", cluster.adminToken);
    await page.click("#login-form button[type=submit]");
    // The button is off while the token is tried: its answer is in once it is on again.
    await page.waitForSelector("#login-form button[type=submit]:not([disabled])", { timeout: 10_000 });
    assert.match(await page.textContent("#login-error"), /the token was refused/i);
    assert.equal(await page.isVisible("#app"), false);

    await page.fill("#token", admin);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#app:not([hidden])", { timeout: 15_000 });
    assert.match(await page.textContent("#whoami"), /admin token/);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("blindstore-console-token"),
      local: localStorage.length,
      cookie: document.cookie,
      url: location.href,
    }));
    assert.equal(stored.session, admin);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookie, "");
    assert.ok(!stored.url.includes(admin), "the token is never in the address");
    assert.equal((await context.cookies()).length, 0);
  });

  it("cluster: every member with its health, the leader marked", async () => {
    await page.waitForFunction(() => document.querySelectorAll("table.members tbody tr").length === 3, null, { timeout: 15_000 });
    await page.waitForFunction(() => [...document.querySelectorAll("table.members tbody tr")].every((r) => !r.classList.contains("unreachable")), null, { timeout: 15_000 });
    const text = await page.textContent("#view");
    for (const name of ["ams-1", "ams-2", "ams-3"]) assert.ok(text.includes(name), `${name} shown`);
    assert.equal(await page.locator("table.members .pill-info", { hasText: "leader" }).count(), 1, "one leader");
    assert.match(text, /Answered by\s*node 1 \(ams-1\)/);
    assert.equal(await memberCell(page, 1, "Reachable"), "yes");
    assert.equal(await memberCell(page, 1, "Role"), "voter");
    assert.match(await memberCell(page, 1, "Build"), /level \d+/);
    await page.screenshot({ path: join(shots, "cluster.png") });
    await noAxeViolations("the cluster view");
  });

  it("fits a phone", async () => {
    const phone = await watchedContext(browser, problems, PHONE);
    const small = await phone.newPage();
    await signIn(small, node1, admin);
    await small.waitForFunction(() => document.querySelectorAll("table.members tbody tr").length === 3, null, { timeout: 15_000 });
    await small.screenshot({ path: join(shots, "phone.png"), fullPage: true });
    // Only the table scrolls sideways, inside its own region; the page does not.
    assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "no sideways page scroll");
    const violations = await axeViolations(small, "body");
    assert.deepEqual(violations, [], violations.join("\n"));
    await phone.close();
  });

  it("is usable from the keyboard: views by their links, a dialog closed with Escape", async () => {
    await page.focus('nav a[href="#chunks"]');
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.classList.contains("view-title") && document.activeElement.textContent === "Chunks", null, { timeout: 5_000 });
    await page.focus('nav a[href="#cluster"]');
    await page.keyboard.press("Enter");
    await page.waitForSelector("table.members tbody tr", { timeout: 10_000 });
    await page.focus('button[data-focus="drain-3"]');
    await page.keyboard.press("Enter");
    await page.waitForSelector("dialog#confirm[open]", { timeout: 5_000 });
    await page.keyboard.press("Escape");
    await page.waitForSelector("dialog#confirm:not([open])", { state: "attached", timeout: 5_000 });
    // Nothing happened, and the focus is back on the button, also after the table was rebuilt
    // by its next refresh.
    const updated = await page.textContent(".updated");
    await page.waitForFunction((before) => document.querySelector(".updated")?.textContent !== before, updated, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.focus), "drain-3");
    assert.equal(await memberCell(page, 3, "Draining"), "no");
  });

  it("zones: usage against quotas, and a quota change confirmed and applied", async () => {
    await openView(page, "zones");
    await page.waitForSelector("table.zones tbody tr", { timeout: 10_000 });
    assert.deepEqual(await page.$$eval("table.zones tbody th", (cells) => cells.map((c) => c.textContent).sort()), ["notes", "photos"]);
    await page.click('button[data-focus="manage-photos"]');
    await page.waitForSelector("#zone-detail h3", { timeout: 5_000 });
    await page.screenshot({ path: join(shots, "zones.png") });
    await noAxeViolations("the zones view");

    await page.fill("#quota-max_chunks", "5000");
    await page.click("#zone-detail form:first-of-type button[type=submit]");
    await page.waitForSelector("dialog#confirm[open]", { timeout: 5_000 });
    assert.match(await page.textContent("dialog#confirm"), /Chunks per node: 100,000,000 → 5,000/);
    await noAxeViolations("the quota confirmation", "dialog#confirm");
    const formsBefore = await page.$("#zone-detail .forms");
    await confirmDialog(page);
    await page.waitForSelector(".notices .notice-ok", { timeout: 10_000 });
    assert.match(await page.textContent(".notices"), /Quotas of photos now/);
    // The forms are built again from a read made after the change (not one under way before it).
    await page.waitForFunction((forms) => !forms.isConnected, formsBefore, { timeout: 10_000 });
    assert.equal(await page.inputValue("#quota-max_chunks"), "5000");
    const zone = (await api(node1, "GET", "/v1/admin/zones/photos", { token: admin })).body;
    assert.equal(zone.quota.max_chunks, 5000);
    assert.equal(zone.quota.max_chains, 1_000_000, "the other quotas kept their values");

    // Who may register: a policy change, confirmed.
    await page.check("#registration-invite");
    await page.click("#zone-detail form:last-of-type button[type=submit]");
    await confirmDialog(page);
    await page.waitForFunction(() => /Registration in photos is now invite/.test(document.querySelector(".notices")?.textContent ?? ""), null, { timeout: 10_000 });
    assert.equal((await api(node1, "GET", "/v1/admin/zones/photos", { token: admin })).body.registration.policy, "invite");
  });

  it("chunks: replication health and the most requested chunks", async () => {
    await openView(page, "chunks");
    await page.waitForSelector("table.most tbody tr", { timeout: 10_000 });
    const rows = await page.$$eval("table.most tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(rows[0].slice(1), ["photos", photos[0], "9"]);
    assert.deepEqual(rows[1].slice(1), ["photos", photos[1], "6"]);
    assert.match(await page.textContent("#view"), /Members answering\s*3 of 3/);
    await page.screenshot({ path: join(shots, "chunks.png") });
    await noAxeViolations("the chunks view");
  });

  it("live charts: appends per second, latency, commit time, cache hits, disk", async () => {
    await openView(page, "charts");
    // Appends for a while, at a few per second, and chunk reads.
    const until = Date.now() + 9_000;
    while (Date.now() < until) {
      await cluster.chain.append(2);
      await api(node1, "GET", `/v1/zones/photos/chunks/${photos[5]}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.waitForFunction(
      () => {
        const first = document.querySelector(".chart-card .chart-latest")?.textContent ?? "";
        const m = /appends ([\d.]+)\/s/.exec(first);
        return m && Number(m[1]) > 0;
      },
      null,
      { timeout: 10_000 },
    );
    const titles = await page.$$eval(".chart-card h3", (hs) => hs.map((h) => h.textContent));
    assert.deepEqual(titles, ["Appends", "Request latency", "Commit time", "Cache hit rate", "Free disk"]);
    // The same chunk read over and over: node 1's memory cache answers.
    await page.waitForFunction(
      () => /cache [1-9][\d.]*%/.test(document.querySelector(".chart-card:nth-of-type(4) .chart-latest")?.textContent ?? ""),
      null,
      { timeout: 10_000 },
    );
    assert.equal(await page.locator(".chart-absent").count(), 0, "a node has every series");
    assert.ok((await page.locator("svg.chart path.chart-line").count()) >= 5, "lines drawn");
    const latency = await page.textContent(".chart-card:nth-of-type(2) .chart-latest");
    assert.match(latency, /p50 [\d.,]+ (µs|ms|s) · p99/);
    await page.screenshot({ path: join(shots, "charts.png"), fullPage: true });
    await noAxeViolations("the charts view");
  });

  it("credentials: a new metrics token is shown once and reads metrics; a new admin token replaces the session's", async () => {
    await openView(page, "credentials");
    await page.click("text=Rotate the metrics token…");
    await confirmDialog(page);
    await page.waitForSelector("#new-token", { timeout: 10_000 });
    metricsToken = await page.inputValue("#new-token");
    assert.match(metricsToken, /^\S{16,}$/);
    assert.match(await page.textContent(".new-token"), /Shown once/);
    await page.click(".new-token button:has-text('Copy')");
    await page.waitForFunction(() => document.querySelector(".copy-status")?.textContent === "Copied.", null, { timeout: 5_000 });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), metricsToken);
    await page.screenshot({ path: join(shots, "credentials.png") });
    await noAxeViolations("the credentials view");
    await eventually("the metrics token accepted by /v1/metrics", async () => (await api(node1, "GET", "/v1/metrics", { token: metricsToken })).status === 200);
    assert.match((await api(node1, "GET", "/v1/metrics", { token: metricsToken })).body, /blindstore_http_requests_total/);
    assert.equal((await api(node1, "GET", "/v1/admin/zones", { token: metricsToken })).status, 401, "metrics only");
    // Shown once: leaving the view forgets it.
    await openView(page, "cluster");
    await openView(page, "credentials");
    assert.equal(await page.locator("#new-token").count(), 0);

    await page.click("text=Rotate the admin token…");
    await page.waitForSelector("dialog#confirm[open]", { timeout: 5_000 });
    assert.match(await page.textContent("dialog#confirm"), /every node and gateway will refuse the old admin token; you will be signed in with the new one/i);
    await confirmDialog(page);
    await page.waitForSelector("#new-token", { timeout: 10_000 });
    const rotated = await page.inputValue("#new-token");
    assert.notEqual(rotated, admin);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("blindstore-console-token")), rotated);
    const old = admin;
    admin = rotated;
    await eventually("the old admin token refused", async () => (await api(node1, "GET", "/v1/admin/zones", { token: old })).status === 401);
    // The page goes on with the new token, after a reload too.
    await page.reload();
    await page.waitForSelector("#app:not([hidden])", { timeout: 10_000 });
    await openView(page, "cluster");
    await page.waitForFunction(() => document.querySelectorAll("table.members tbody tr").length === 3, null, { timeout: 10_000 });
  });

  it("a node that does not answer shows a banner, and the page keeps polling", async () => {
    await page.route("**/v1/**", (route) => route.abort("connectionrefused"));
    await page.waitForSelector("#banner .banner-error", { timeout: 10_000 });
    assert.match(await page.textContent("#banner"), /No answer from the node serving this page/);
    await page.unroute("**/v1/**");
    await page.waitForSelector("#banner:empty", { state: "attached", timeout: 10_000 });
    assert.equal(await memberCell(page, 1, "Reachable"), "yes");
  });

  it("drain: node 3's chunks fall to 0 with a progress bar, then the drain is cancelled", async () => {
    await openView(page, "cluster");
    const before = Number((await memberCell(page, 3, "Chunks held")).replace(/,/g, ""));
    assert.ok(before > 0, `node 3 holds chunks (${before})`);
    await page.click('button[data-focus="drain-3"]');
    await confirmDialog(page);
    await page.waitForSelector('.drain[data-node="3"] progress', { timeout: 10_000 });
    assert.equal(await memberCell(page, 3, "Draining"), "draining");
    // The screenshot shows the drain under way if the page catches it there.
    let shot = false;
    const seen = new Set();
    await eventually(
      "node 3 drained",
      async () => {
        const held = Number((await memberCell(page, 3, "Chunks held")).replace(/,/g, ""));
        seen.add(held);
        if (!shot && held > 0 && held < before && /chunks\/s/.test(await page.textContent(".drains"))) {
          await page.screenshot({ path: join(shots, "cluster-drain.png") });
          shot = true;
        }
        return held === 0;
      },
      { timeout: 60_000, everyMs: 250 },
    );
    if (!shot) await page.screenshot({ path: join(shots, "cluster-drain.png") });
    assert.ok(seen.size >= 2 || before <= 2, `the count fell in steps the page showed: ${[...seen]}`);
    await page.waitForFunction(() => /Drained: it holds no chunks/.test(document.querySelector(".drains")?.textContent ?? ""), null, { timeout: 5_000 });
    const progress = await page.$eval('.drain[data-node="3"] progress', (p) => [p.value, p.max]);
    assert.equal(progress[0], progress[1], "the bar is full");

    await page.click('button[data-focus="undrain-3"]');
    await confirmDialog(page);
    await page.waitForFunction(() => !document.querySelector(".drains"), null, { timeout: 10_000 });
    assert.equal(await memberCell(page, 3, "Draining"), "no");
    const members = (await api(node1, "GET", "/v1/admin/cluster", { token: admin })).body.members;
    assert.equal(members.find((m) => m.node_id === 3).draining, false);
  });

  it("a killed node shows as unreachable within seconds", async () => {
    await cluster.nodes[1].kill();
    const started = Date.now();
    await page.waitForSelector('table.members tr.unreachable[data-node="2"]', { timeout: 12_000 });
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds < 12, `seen after ${seconds} s`);
    assert.match(await memberCell(page, 2, "Reachable"), /no/);
    assert.equal(await memberCell(page, 2, "Chunks held"), "—");
    await page.screenshot({ path: join(shots, "cluster-unreachable.png") });
    await noAxeViolations("the cluster view with a node down");
  });

  it("a removal asked of a follower is refused with the leader named, in the dialog", async () => {
    const { leader, follower, at } = await roles();
    const elsewhere = await context.newPage();
    await signIn(elsewhere, follower, admin);
    await elsewhere.waitForSelector('button[data-focus="remove-2"]', { timeout: 15_000 });
    await elsewhere.click('button[data-focus="remove-2"]');
    await elsewhere.fill("#remove-confirm", "2");
    await elsewhere.check("#remove-force");
    await elsewhere.check("#remove-below-three");
    await elsewhere.click("dialog#confirm button[type=submit]");
    try {
      await elsewhere.waitForSelector("dialog#confirm [role=alert]:not([hidden])", { timeout: 15_000 });
      assert.equal(await elsewhere.isVisible("dialog#confirm"), true, "the dialog stays open to retry or cancel");
      assert.match(await elsewhere.textContent("dialog#confirm [role=alert]"), new RegExp(`leader is node ${leader} at ${at}`));
    } finally {
      await elsewhere.close();
    }
    assert.deepEqual((await api(node1, "GET", "/v1/admin/cluster", { token: admin })).body.members.map((m) => m.node_id).sort(), [1, 2, 3]);
  });

  it("remove: the id typed to confirm, refused below three voters until the operator says so", async () => {
    const { at } = await roles();
    // On the leader.
    if (at !== node1) await signIn(page, at, admin);

    await page.click('button[data-focus="remove-2"]');
    await page.waitForSelector("dialog#confirm[open]", { timeout: 5_000 });
    const go = page.locator("dialog#confirm button[type=submit]");
    assert.equal(await go.isDisabled(), true, "nothing typed yet");
    await page.fill("#remove-confirm", "2");
    await page.check("#remove-force");
    assert.match(await page.textContent("dialog#confirm .warning-box"), /leaves 2 members able to vote/);
    assert.equal(await go.isDisabled(), true, "below three voters needs its own checkbox");
    assert.match(await page.textContent("#confirm-reason"), /fewer than three voters/);
    await page.screenshot({ path: join(shots, "remove.png") });
    await noAxeViolations("the remove dialog", "dialog#confirm");
    // The server refuses it just the same without the flag (a console with a stale view, a script).
    const refused = await page.evaluate(async (token) => {
      const r = await fetch("/v1/admin/cluster/nodes/2?force=true", { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, body: await r.json() };
    }, admin);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /able to vote/);

    await page.check("#remove-below-three");
    assert.equal(await go.isDisabled(), false);
    await confirmDialog(page);
    await page.waitForFunction(() => /node 2( \(ams-2\))? was removed/i.test(document.querySelector(".notices")?.textContent ?? ""), null, { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll("table.members tbody tr").length === 2, null, { timeout: 15_000 });
    assert.deepEqual((await memberIds()).sort(), [1, 3]);
    assert.match(await page.textContent("#view"), /Removed for good \(ids never reused\): 2/);
  });

  it("the gateway serves the console too", async () => {
    const gateway = cluster.gateway.url;
    await eventually("the gateway accepts the rotated admin token", async () => (await api(gateway, "GET", "/v1/metrics", { token: admin })).status === 200, { timeout: 20_000 });
    const gw = await context.newPage();
    await signIn(gw, gateway, admin);
    const members = (await api(node1, "GET", "/v1/admin/cluster", { token: admin })).body.members.length;
    await gw.waitForFunction((n) => document.querySelectorAll("table.members tbody tr").length === n, members, { timeout: 15_000 });
    await gw.waitForFunction(() => /Gateway/.test(document.querySelector("#whoami")?.textContent ?? ""), null, { timeout: 10_000 });
    await gw.click('nav a[href="#charts"]');
    await gw.waitForFunction(() => [...document.querySelectorAll(".chart-card h3")].some((h) => h.textContent === "Cache hit rate"), null, { timeout: 10_000 });
    await gw.waitForFunction(() => /A gateway stores nothing/.test(document.querySelector("#view")?.textContent ?? ""), null, { timeout: 10_000 });
    const violations = await axeViolations(gw, "body");
    assert.deepEqual(violations, [], violations.join("\n"));
    await gw.close();
  });

  it("with the metrics token: metrics and this node's health, and a word about the rest", async () => {
    const other = await watchedContext(browser, problems);
    const metricsPage = await other.newPage();
    await signIn(metricsPage, node1, metricsToken);
    assert.match(await metricsPage.textContent("#whoami"), /metrics token/);
    await metricsPage.waitForSelector("#view .notice-info", { timeout: 5_000 });
    assert.match(await metricsPage.textContent("#view"), /need the admin token/);
    await metricsPage.click('nav a[href="#charts"]');
    await metricsPage.waitForSelector("svg.chart", { timeout: 10_000 });
    // The view changes after the click (on hashchange): wait for the zones view's own note.
    await metricsPage.click('nav a[href="#zones"]');
    await metricsPage.waitForFunction(() => /^Zones, their usage and settings need the admin token/.test(document.querySelector("#view .notice-info")?.textContent ?? ""), null, { timeout: 5_000 });
    await other.close();
  });

  it("a token refused mid-session returns to the sign-in form and says so", async () => {
    await page.goto(`${node1}/admin/#cluster`);
    await page.waitForSelector("table.members tbody tr", { timeout: 10_000 });
    // Another operator rotates the admin token: this page's token is refused at its next call.
    const rotated = await api(node1, "POST", "/v1/admin/cluster/credentials/rotate", { token: admin, body: { credential: "admin" } });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
    assert.match(await page.textContent("#login-error"), /the token was refused/i);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the refused token is forgotten");
    admin = rotated.body.admin_token;
    await page.fill("#token", admin);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("table.members tbody tr", { timeout: 10_000 });
  });

  it("never tripped its content security policy nor threw", () => {
    assert.deepEqual(problems, []);
  });
});
