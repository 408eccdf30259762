// The console page: signing in and out, the views and which one is shown (by the address's
// fragment, so a reload stays put), the banner when the node cannot be reached, and the
// answering node's health in the header.

import { ApiError, call, callText, messageOf, onConnection, session, type Access, type Health } from "./api.js";
import { ChartsView, MetricsFeed } from "./charts.js";
import { ChunksView } from "./chunks.js";
import { ClusterView, nodeName, capital } from "./cluster.js";
import { CredentialsView } from "./credentials.js";
import { el, replace } from "./element.js";
import { Poller, type Context, type View } from "./view.js";
import { ZonesView } from "./zones.js";

const HEALTH_INTERVAL_MS = 5_000;

const page = {
  login: byId("login"),
  loginForm: byId("login-form") as HTMLFormElement,
  token: byId("token") as HTMLInputElement,
  loginError: byId("login-error"),
  app: byId("app"),
  nav: byId("views"),
  banner: byId("banner"),
  view: byId("view"),
  whoami: byId("whoami"),
  signOut: byId("sign-out") as HTMLButtonElement,
};

const feed = new MetricsFeed();
const views: View[] = [new ClusterView(), new ZonesView(), new ChunksView(), new ChartsView(feed), new CredentialsView()];

let current: View | null = null;
let health: Health | null = null;
let access: Access | null = null;
const healthPoller = new Poller(readHealth, HEALTH_INTERVAL_MS);

const context: Context = {
  get access() {
    return access ?? "metrics";
  },
  health: () => health,
};

onConnection({
  refused() {
    signOut("The token was refused: sign in again with a current token.");
  },
  reachable() {
    replace(page.banner);
  },
  unreachable(error) {
    replace(
      page.banner,
      el(
        "p",
        { class: "banner-error" },
        el("strong", {}, "No answer from the node serving this page. "),
        `${capital(error.message)}. The console keeps trying; what it shows may be out of date.`,
      ),
    );
  },
});

page.loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void signIn(page.token.value.trim());
});
page.signOut.addEventListener("click", () => signOut(null));
window.addEventListener("hashchange", () => {
  if (access) showView(true);
});

buildNav();
if (session.token && session.access) {
  start(session.access);
} else {
  showLogin(null);
}

/** Tries `token`: /v1/metrics takes either token, an admin call only the admin one. */
async function signIn(token: string): Promise<void> {
  if (token === "") {
    loginProblem("Paste a token first.");
    return;
  }
  const button = page.loginForm.querySelector("button") as HTMLButtonElement;
  button.disabled = true;
  try {
    await callText("/v1/metrics", { token, quietRefusal: true });
  } catch (error) {
    button.disabled = false;
    loginProblem(error instanceof ApiError && error.status === 401 ? "The token was refused." : `Signing in failed: ${messageOf(error)}`);
    return;
  }
  let granted: Access = "admin";
  try {
    await call("GET", "/v1/admin/cluster/overview", { token, quietRefusal: true });
  } catch (error) {
    // Refused here but not for metrics: the metrics token. Any other failure is not about the
    // token; the views report it.
    if (error instanceof ApiError && error.status === 401) granted = "metrics";
  }
  button.disabled = false;
  page.token.value = "";
  session.set(token, granted);
  start(granted);
}

function start(granted: Access): void {
  access = granted;
  page.login.hidden = true;
  page.app.hidden = false;
  page.signOut.hidden = false;
  page.whoami.hidden = false;
  renderWhoami();
  feed.start();
  healthPoller.start();
  showView(false);
}

function signOut(reason: string | null): void {
  session.clear();
  access = null;
  current?.hide();
  current = null;
  feed.stop();
  healthPoller.stop();
  replace(page.view);
  replace(page.banner);
  page.app.hidden = true;
  page.signOut.hidden = true;
  page.whoami.hidden = true;
  const dialog = document.getElementById("confirm") as HTMLDialogElement;
  if (dialog.open) dialog.close();
  showLogin(reason);
}

function showLogin(reason: string | null): void {
  page.login.hidden = false;
  if (reason) loginProblem(reason);
  else page.loginError.hidden = true;
  page.token.focus();
}

function loginProblem(text: string): void {
  page.loginError.textContent = text;
  page.loginError.hidden = false;
}

function buildNav(): void {
  replace(
    page.nav,
    el("ul", {}, ...views.map((v) => el("li", {}, el("a", { href: `#${v.id}`, "data-view": v.id }, v.title)))),
  );
}

/** Shows the view the fragment names (the cluster by default); `focus` moves the focus to it. */
function showView(focus: boolean): void {
  const wanted = location.hash.slice(1);
  const view = views.find((v) => v.id === wanted) ?? views[0]!;
  if (view !== current) {
    current?.hide();
    current = view;
    replace(page.view);
    view.show(page.view, context);
  }
  for (const link of page.nav.querySelectorAll<HTMLAnchorElement>("a")) {
    if (link.dataset.view === view.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · Blindstore console`;
  if (focus) page.view.querySelector<HTMLElement>(".view-title")?.focus();
}

async function readHealth(): Promise<void> {
  try {
    health = await call<Health>("GET", "/v1/health");
  } catch {
    // The banner says the node does not answer; the header keeps the last health read.
  }
  renderWhoami();
}

function renderWhoami(): void {
  const who = health
    ? health.role === "gateway"
      ? `Gateway${health.name ? ` (${health.name})` : ""}`
      : `${capital(nodeName(health.node_id, health))} · ${health.role}`
    : "Connecting…";
  replace(
    page.whoami,
    el("span", { class: "who" }, who),
    el("span", { class: `pill ${access === "admin" ? "pill-info" : "pill-plain"}` }, access === "admin" ? "admin token" : "metrics token"),
  );
}

function byId(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}
