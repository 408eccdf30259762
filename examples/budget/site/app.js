// The budget app: plain JavaScript on the Blindstore SDK. Every expense is an encrypted,
// signed entry of the user's chain; the keys live in the account's vault (encrypted in the
// page under a key only the password or a passkey opens). The server sees ciphertext only.
//
// The chain holds operations, folded in order into the current expenses:
//   {"t": "add",  "id", "date": "YYYY-MM-DD", "cents", "category", "note"}
//   {"t": "edit", "id", "date", "cents", "category", "note"}   (replaces the expense)
//   {"t": "del",  "id"}
// A shared month is a chain of its own whose last entry is a snapshot of that month:
//   {"t": "month", "month": "YYYY-MM", "expenses": [...]}; its read key travels in the link's
// fragment (never sent to the server).

import {
  Blindstore,
  ChainKeys,
  IndexedDbEntryStore,
  IndexedDbHeadStore,
  IndexedDbOutboxStore,
} from "./sdk/blindstore.js";

const $ = (id) => document.getElementById(id);
const zone = new URLSearchParams(location.search).get("zone")
  ?? document.querySelector('meta[name="blindstore-zone"]')?.content ?? "demo";
// Heads remembered (a server rolling a chain back is caught), verified entries cached (reads
// work offline), writes queued in an encrypted outbox (sent when the server answers).
const [headStore, entryStore, outboxStore] = await Promise.all([
  IndexedDbHeadStore.open(),
  IndexedDbEntryStore.open(),
  IndexedDbOutboxStore.open(),
]);
const bs = new Blindstore({ url: location.origin, zone, headStore, entryStore, outboxStore });
const BOOK = "budget";
const PALETTE = ["#2f6fed", "#1f8a4c", "#b7791f", "#c0362c", "#7b4fd6", "#0e8a9a", "#d14d8b", "#667085"];

/** What the page shows, rebuilt from the chain. */
const state = {
  session: null,
  chain: null,
  /** The vault's record: the expenses chain's keys and the shared months' chains. */
  book: null,
  /** The chain folded into expenses (`chain.fold`): `next` is the next index to fold. */
  folded: null,
  /** The expenses by id: the fold's state (or a shared month's snapshot). */
  expenses: new Map(),
  /** Operations queued in the outbox and not yet in the chain, by write id. */
  pending: new Map(),
  /** Why the outbox stopped sending (shown with a Retry), or null. */
  problem: null,
  /** Operations the server refused for good, by write id: kept by the outbox, shown with their reason and Retry. */
  failed: new Map(),
  /** Refused changes queued again by Retry: their share refresh is done when they are sent. */
  retried: new Set(),
  /** The expense just deleted, while its Undo is offered. */
  undo: null,
  month: currentMonth(),
  readOnly: false,
  follow: null,
  /** The account's passkeys as last listed (the account panel). */
  passkeys: [],
};

// ---- helpers ------------------------------------------------------------------------------

function currentMonth() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
}

function shiftMonth(month, by) {
  const [y, m] = month.split("-").map(Number);
  const d = new Date(y, m - 1 + by, 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

function monthTitle(month) {
  const [y, m] = month.split("-").map(Number);
  return new Date(y, m - 1, 1).toLocaleDateString("en", { month: "long", year: "numeric" });
}

function money(cents) {
  return (cents / 100).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    return;
  }
  box.textContent = describe(error);
  box.hidden = false;
  if (error.code && isTampering(error)) setStatus("alert", "server check failed");
}

/** What a user should read for an error, by the SDK's error codes. */
function describe(error) {
  switch (error.code) {
    case "invalid_login": return "Wrong username or password.";
    case "account_exists": return "That username is taken. Log in instead, or pick another one.";
    case "invalid_invite": return "This app takes new accounts by invitation: enter the invite code you were given (each code works once).";
    case "registration_closed": return "This app takes no new accounts. Existing accounts can log in.";
    case "invalid_session": return "Your session has ended. Please log in again.";
    case "passkeys_off": return "Passkeys are not enabled for this app.";
    case "passkey_failed": return "The passkey did not answer: it was cancelled, or this device holds none for your account.";
    case "rate_limited": return `Too many attempts. Try again in ${error.retryAfter ?? 60} seconds.`;
    case "unknown_passkey": return "That passkey was removed already. Nothing changed.";
    case "reauthentication_required": return "This needs your password again.";
    case "network": return "The server cannot be reached. Changes wait until it is back.";
    case "missing_key": return "This entry was written under a key you do not have.";
    case "quota_exceeded": return "The app's storage for this zone is full, so the server refused the change. It is kept here: retry once space is made.";
    case "payload_too_large": return "The change is too large for the server to take.";
    default:
      if (isTampering(error)) {
        return `The server sent data that failed verification (${error.code}${error.reason ? `: ${error.reason}` : ""}). Nothing from it was shown.`;
      }
      return error.message || String(error);
  }
}

/** Errors that mean the server sent something that failed the SDK's checks. */
function isTampering(error) {
  return ["verification_failed", "rollback", "fork", "decryption_failed", "escrow_failed", "unsupported_version"].includes(error.code);
}

function setStatus(kind, text) {
  const pill = $("status");
  pill.dataset.state = kind;
  pill.textContent = text;
}

async function busy(button, task) {
  button.disabled = true;
  showError(null);
  try {
    return await task();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// ---- folding the chain ---------------------------------------------------------------------

/**
 * How the chain folds into the expenses. The SDK keeps a checkpoint of the result (encrypted
 * under the chain's key, in this browser) every 200 entries, so a reload reads the checkpoint
 * and the newest entries, not years of them. Raise `version` when `applyOp` changes.
 */
const EXPENSES = {
  name: "expenses",
  version: 1,
  every: 200,
  initial: () => new Map(),
  apply: applyOp,
  toJSON: (expenses) => [...expenses.values()],
  fromJSON: (list) => new Map(list.map((expense) => [expense.id, expense])),
};

function applyOp(expenses, entry) {
  const op = entry.content.kind === "json" ? entry.content.value : null;
  if (!op || typeof op !== "object") return expenses;
  if ((op.t === "add" || op.t === "edit") && typeof op.id === "string") {
    expenses.set(op.id, {
      id: op.id,
      date: String(op.date),
      cents: Number(op.cents) || 0,
      category: String(op.category ?? "Other"),
      note: String(op.note ?? ""),
    });
  } else if (op.t === "del") {
    expenses.delete(op.id);
  }
  return expenses;
}

/** Folds one entry, if it is the next; a write of ours that landed is no longer pending. */
function fold(entry) {
  if (entry.writeId) {
    state.pending.delete(entry.writeId);
    // Refused here, then retried from another tab and saved after all.
    if (state.failed.delete(entry.writeId)) clearProblemIfSettled();
  }
  return state.folded.add(entry);
}

/** Reads whatever the chain has past what was folded. */
async function catchUp() {
  for await (const entry of state.chain.entries({ from: state.folded.next, prev: state.folded.head })) fold(entry);
  render();
}

function follow() {
  state.follow?.close();
  // One connection per origin, shared by every tab of the app.
  state.follow = bs.live().follow(state.chain, {
    from: state.folded.next,
    prev: state.folded.head,
    onEntry: (entry) => {
      if (!fold(entry)) return;
      render();
      void refreshShare(monthOf(entry));
    },
    onError: (error) => {
      if (error.code === "network") setStatus("offline", "offline");
      else showError(error);
    },
  });
}

function monthOf(entry) {
  const op = entry.content.kind === "json" ? entry.content.value : null;
  const expense = op && state.expenses.get(op.id);
  return expense ? expense.date.slice(0, 7) : op?.date?.slice(0, 7);
}

/** The expenses with the queued operations applied on top (shown as pending). */
function currentExpenses() {
  const all = new Map(state.expenses);
  for (const [ops, failed] of [[state.pending, false], [state.failed, true]]) {
    for (const op of ops.values()) {
      if (op.t === "del") all.delete(op.id);
      else all.set(op.id, { ...op, pending: true, failed });
    }
  }
  return all;
}

function monthExpenses(month) {
  return [...currentExpenses().values()]
    .filter((e) => e.date.startsWith(month))
    .sort((a, b) => (a.date === b.date ? a.id.localeCompare(b.id) : a.date.localeCompare(b.date)));
}

// ---- rendering -----------------------------------------------------------------------------

function render() {
  $("month-title").textContent = monthTitle(state.month);
  const list = monthExpenses(state.month);
  const body = $("expenses").tBodies[0];
  body.replaceChildren(...list.map(row));
  $("empty").hidden = list.length > 0;
  $("outbox-discard").hidden = state.failed.size === 0;
  renderChart(list);
}

function row(expense) {
  const tr = document.createElement("tr");
  tr.dataset.id = expense.id;
  if (expense.pending) tr.className = "pending";
  for (const [text, cls, label] of [[expense.date, "", "Date"], [expense.category, "", "Category"], [expense.note, "note", "Note"], [money(expense.cents), "num", "Amount"]]) {
    const td = document.createElement("td");
    td.textContent = text;
    td.dataset.label = label;
    if (cls) td.className = cls;
    tr.append(td);
  }
  // Said in words, not by colour only: a change not on the server yet, or refused by it.
  if (expense.pending) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = expense.failed ? "not saved" : state.problem ? "not sent" : "waiting to be sent";
    tr.cells[2].append(" ", badge);
  }
  const actions = document.createElement("td");
  actions.className = "actions editor-only";
  if (!state.readOnly) {
    const edit = document.createElement("button");
    edit.className = "quiet";
    edit.textContent = "Edit";
    edit.addEventListener("click", () => startEdit(expense));
    const del = document.createElement("button");
    del.className = "quiet";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete ${expense.note || expense.category} of ${expense.date}`);
    edit.setAttribute("aria-label", `Edit ${expense.note || expense.category} of ${expense.date}`);
    del.addEventListener("click", () => busy(del, () => remove(expense)));
    actions.append(edit, del);
  }
  tr.append(actions);
  return tr;
}

function renderChart(list) {
  const totals = new Map();
  for (const e of list) totals.set(e.category, (totals.get(e.category) ?? 0) + e.cents);
  const sorted = [...totals].sort((a, b) => b[1] - a[1]);
  const max = sorted[0]?.[1] ?? 0;
  const sum = sorted.reduce((s, [, c]) => s + c, 0);
  $("month-total").textContent = sum ? `Total ${money(sum)}` : "";
  $("chart").replaceChildren(...sorted.map(([category, cents], i) => {
    const line = document.createElement("div");
    line.className = "bar-row";
    line.dataset.category = category;
    const name = document.createElement("span");
    name.textContent = category;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(2, Math.round((cents / max) * 100))}%`;
    fill.style.background = PALETTE[i % PALETTE.length];
    track.append(fill);
    const amount = document.createElement("span");
    amount.className = "num";
    amount.textContent = money(cents);
    line.append(name, track, amount);
    return line;
  }));
  if (!sorted.length) {
    const none = document.createElement("p");
    none.className = "hint";
    none.textContent = "Nothing spent this month.";
    $("chart").append(none);
  }
}

// ---- writing -------------------------------------------------------------------------------

/**
 * Queues one operation in the outbox: shown at once (as pending), sent when the server answers —
 * re-based on the chain's head if another tab or device wrote meanwhile, never twice.
 */
async function record(op) {
  const chain = state.chain;
  const write = chain.enqueueJson(op);
  await write.queued;
  state.pending.set(write.id, op);
  render();
  void write.durable.then(async () => {
    // Sent after a logout and a new login: the page shows that session's chain by now.
    if (state.chain !== chain) return;
    await catchUp();
    await refreshShare(op.date?.slice(0, 7) ?? state.month);
  }, () => {
    // Refused for good or discarded at logout: the outbox's "failed" event is handled in start().
  }).catch(showError);
}

/** Deletes an expense, and offers to undo it for a while (the focus goes to Undo). */
async function remove(expense) {
  await record({ t: "del", id: expense.id });
  state.undo = expense;
  $("undo-text").textContent = `Deleted “${expense.note || expense.category}” (${money(expense.cents)}, ${expense.date}).`;
  $("undo-bar").hidden = false;
  $("undo").focus();
  clearTimeout(state.undoTimer);
  state.undoTimer = setTimeout(hideUndo, 20_000);
}

function hideUndo() {
  clearTimeout(state.undoTimer);
  state.undo = null;
  $("undo-bar").hidden = true;
}

/** Undo puts the deleted expense back, as it was (the same id: its later edits apply to it). */
async function undoDelete() {
  const expense = state.undo;
  if (!expense) return;
  hideUndo();
  const { id, date, cents, category, note } = expense;
  await record({ t: "add", id, date, cents, category, note });
  $("save-expense").focus();
}

/** Says why changes are not on the server, with Retry. */
function showProblem(text) {
  state.problem = text;
  $("outbox-problem-text").textContent = text;
  $("outbox-problem").hidden = false;
  render();
}

function clearProblem() {
  state.problem = null;
  $("outbox-problem").hidden = true;
}

/** The problem line goes once nothing is left unsent: no refused change, none waiting. */
function clearProblemIfSettled() {
  if (state.failed.size === 0 && state.pending.size === 0) clearProblem();
}

/**
 * Retry: the refused changes are queued again (the same writes: each lands once), and the
 * outbox tries what it holds now. Each one queued again moves to the waiting rows on the
 * outbox's `queued` event (handled in start()); any the outbox no longer holds refused (another
 * tab retried or discarded it) leaves the list.
 */
async function retryChanges() {
  clearProblem();
  await bs.outbox.retry();
  state.failed.clear();
  render();
  bs.outbox.flush();
}

/** Discard: the refused changes are forgotten for good, once the user says so (each leaves the list on its `dropped` event). */
async function discardChanges() {
  const count = state.failed.size;
  if (!confirm(`Discard ${count === 1 ? "the change" : `the ${count} changes`} the server refused? This cannot be undone.`)) return;
  for (const id of [...state.failed.keys()]) await bs.outbox.drop(id);
  state.failed.clear();
  clearProblemIfSettled();
  render();
}

/** This account's changes not on the server: waiting, and refused ones kept (a logout asks about both). */
async function unsentCount() {
  return (await bs.outbox.pending()).length + (await bs.outbox.refused()).length;
}

/** The status pill: online, offline, or how many writes wait. */
async function showOutbox() {
  if (state.readOnly) return;
  const waiting = (await bs.outbox.pending()).length;
  if (waiting > 0) setStatus("queued", `queued (${waiting})`);
  else setStatus(navigator.onLine ? "online" : "offline", navigator.onLine ? "online" : "offline");
}

function startEdit(expense) {
  $("edit-id").value = expense.id;
  $("date").value = expense.date;
  $("amount").value = (expense.cents / 100).toFixed(2);
  $("category").value = expense.category;
  $("note").value = expense.note;
  $("form-title").textContent = "Edit the expense";
  $("save-expense").textContent = "Save";
  $("cancel-edit").hidden = false;
}

function resetForm() {
  $("edit-id").value = "";
  $("amount").value = "";
  $("note").value = "";
  $("form-title").textContent = "Add an expense";
  $("save-expense").textContent = "Add";
  $("cancel-edit").hidden = true;
  if (!$("date").value.startsWith(state.month)) $("date").value = `${state.month}-01`;
}

// ---- sharing a month -----------------------------------------------------------------------

/** Writes the month's snapshot into its share chain, if the month is shared. */
async function refreshShare(month) {
  const keys = month && state.book?.shares?.[month];
  if (!keys) return;
  const chain = bs.openChain(await ChainKeys.fromJSON(keys));
  // Built at each attempt: after a conflict (another tab wrote a snapshot) the newest state wins.
  const snapshot = () => ({
    t: "month",
    month,
    expenses: monthExpenses(month).filter((e) => !e.pending).map(({ pending, ...e }) => e),
  });
  try {
    await chain.appendWithRetry(() => ({ kind: "json", value: snapshot() }), { maxAttempts: 5 });
  } catch (error) {
    // Offline: the next change to the month, online, writes the snapshot again.
    if (error.code !== "network") throw error;
  }
}

async function shareMonth() {
  const month = state.month;
  let keys = state.book.shares?.[month];
  if (!keys) {
    const chain = await bs.createChain();
    keys = chain.keys.toJSON();
    state.book = { ...state.book, shares: { ...state.book.shares, [month]: keys } };
    await state.session.vault.put(BOOK, state.book);
  }
  await refreshShare(month);
  const reader = (await ChainKeys.fromJSON(keys)).forReader().toJSON();
  const fragment = btoa(JSON.stringify(reader)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const link = `${location.origin}${location.pathname}${location.search}#share=${fragment}`;
  $("share-link").value = link;
  $("share-box").hidden = false;
}

async function openShared(fragment) {
  state.readOnly = true;
  document.body.classList.add("readonly");
  $("readonly-note").hidden = false;
  setStatus("readonly", "read-only");
  const json = JSON.parse(atob(fragment.replaceAll("-", "+").replaceAll("_", "/")));
  // Read-only whatever the link holds: a write key in a link is never used.
  const chain = bs.openChain((await ChainKeys.fromJSON(json)).forReader());
  state.chain = chain;
  const show = (snapshot) => {
    if (snapshot?.t !== "month") return;
    state.month = snapshot.month;
    state.expenses = new Map(snapshot.expenses.map((e) => [e.id, e]));
    render();
  };
  const [last] = await chain.readLast(1);
  if (last) show(last.content.value);
  $("app").hidden = false;
  state.follow = chain.follow({
    from: last ? last.index + 1 : 0,
    onEntry: (entry) => show(entry.content.value),
    onError: (error) => showError(error),
  });
}

// ---- accounts ------------------------------------------------------------------------------

async function enter(session) {
  state.session = session;
  clearProblem();
  $("auth").hidden = true;
  $("loading").hidden = false;
  $("main").setAttribute("aria-busy", "true");
  $("who").textContent = session.username;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("account-open").hidden = false;
  $("auth").hidden = true;
  $("auth-notice").hidden = true;
  let book = await session.vault.get(BOOK);
  if (!book) {
    const chain = await bs.createChain();
    book = { chain: chain.keys.toJSON(), shares: {} };
    await session.vault.put(BOOK, book);
  }
  state.book = book;
  state.chain = bs.openChain(await ChainKeys.fromJSON(book.chain));
  try {
    state.folded = await state.chain.fold(EXPENSES);
  } finally {
    $("loading").hidden = true;
    $("main").removeAttribute("aria-busy");
  }
  state.expenses = state.folded.state;
  // Changes made here and not sent yet (a reload, a browser restarted offline): shown as waiting.
  for (const write of await bs.outbox.pending()) {
    if (write.content?.kind === "json" && write.chainId === state.chain.chainId) state.pending.set(write.id, write.content.value);
  }
  // Changes the server refused for good, kept by the outbox: shown again with the reason, and Retry.
  const refused = (await bs.outbox.refused()).filter((write) => write.content?.kind === "json" && write.chainId === state.chain.chainId);
  for (const write of refused) state.failed.set(write.id, write.content.value);
  if (refused.length > 0) showProblem(`Not saved: ${describe(refused[0].reason)}`);
  render();
  // For scripts/first-paint.mjs: when the expenses first show, and how many entries were read.
  performance.mark("budget:expenses-shown", { detail: { entries: state.folded.next, fromCheckpoint: state.folded.fromCheckpoint } });
  follow();
  await showOutbox();
  $("app").hidden = false;
  resetForm();
}

function showAuth() {
  $("app").hidden = true;
  $("account").hidden = true;
  $("auth").hidden = false;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("account-open").hidden = true;
  setStatus("starting", "signed out");
}

/** Forgets everything of the user who just left: nothing of theirs stays on screen or in memory. */
function leave() {
  state.follow?.close();
  state.session = null;
  state.book = null;
  state.chain = null;
  state.folded = null;
  state.expenses = new Map();
  state.pending.clear();
  state.failed.clear();
  state.retried.clear();
  clearProblem();
  hideUndo();
  state.passkeys = [];
  showAuth();
}

// ---- the account panel ---------------------------------------------------------------------
//
// Passkeys (add, list, remove), the password, and "log out everywhere". What cannot be undone
// needs a fresh proof of the password or a passkey for the session; when the SDK says it lacks
// one, the app asks (askForProof) and tries again with the answer.

async function openAccount() {
  showError(null);
  $("account-notice").hidden = true;
  $("app").hidden = true;
  $("account").hidden = false;
  $("account-title").focus();
  await loadPasskeys();
}

function closeAccount() {
  $("account").hidden = true;
  $("app").hidden = false;
}

/** Runs an account action behind `button`: the last notice goes, errors show as everywhere else. */
function accountAction(button, task) {
  return busy(button, async () => {
    $("account-notice").hidden = true;
    await task();
  });
}

function notice(text) {
  const box = $("account").hidden ? $("auth-notice") : $("account-notice");
  box.textContent = text;
  box.hidden = false;
}

async function loadPasskeys() {
  state.passkeys = await state.session.passkeys();
  renderPasskeys();
}

function passkeyName(passkey) {
  return passkey.label ?? "Unnamed passkey";
}

function day(ms) {
  return new Date(ms).toLocaleDateString("en", { day: "numeric", month: "short", year: "numeric" });
}

function renderPasskeys() {
  const list = state.passkeys;
  $("passkey-list").replaceChildren(...list.map((passkey) => {
    const item = document.createElement("li");
    item.dataset.id = passkey.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = passkeyName(passkey);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = [passkey.createdAt && `added ${day(passkey.createdAt)}`, passkey.lastUsedAt ? `last used ${day(passkey.lastUsedAt)}` : "never used to log in"]
      .filter(Boolean).join(" · ");
    const remove = document.createElement("button");
    remove.className = "danger";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove the passkey ${passkeyName(passkey)}`);
    remove.addEventListener("click", () => accountAction(remove, async () => {
      const done = await withFreshProof("Removing a passkey", (proof) => state.session.removePasskey(passkey.id, proof));
      if (!done) return;
      await loadPasskeys();
      notice(`The passkey “${passkeyName(passkey)}” was removed.`);
    }));
    const about = document.createElement("span");
    about.className = "about";
    about.append(name, meta);
    item.append(about, remove);
    return item;
  }));
  $("passkeys-empty").hidden = list.length > 0;
  fillChoices($("password-passkeys"), list);
}

/** Fills a fieldset with a checkbox per passkey (hidden when there are none). */
function fillChoices(fieldset, passkeys) {
  fieldset.querySelector(".choice-list").replaceChildren(...passkeys.map((passkey) => {
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = passkey.id;
    label.append(box, passkeyName(passkey));
    return label;
  }));
  fieldset.hidden = passkeys.length === 0;
}

function ticked(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
}

/** "Passkeys that can still log in: …", for after a change. */
function keptPasskeys(passkeys) {
  return passkeys.length === 0
    ? "No passkey can log in to your account now."
    : `Passkeys that can still log in: ${passkeys.map(passkeyName).join(", ")}.`;
}

function sessionsEnded(count) {
  return count === 1 ? "1 session ended" : `${count} sessions ended`;
}

/**
 * Runs `task(proof)` with no proof first; when the SDK needs a fresh one, asks for the password
 * (or a passkey) and runs it again with the answer, asking again after a wrong one. True when it
 * ran; false when the user cancelled (and says that nothing changed).
 */
async function withFreshProof(what, task) {
  try {
    await task({});
    return true;
  } catch (error) {
    if (error.code !== "reauthentication_required") throw error;
  }
  let problem = "";
  for (;;) {
    const proof = await askForProof(what, problem);
    if (proof === null) {
      notice(`${what} was cancelled. Nothing changed.`);
      return false;
    }
    try {
      await task(proof);
      return true;
    } catch (error) {
      if (error.code === "invalid_login") problem = proof.passkey ? "That passkey was not accepted." : "That password is wrong.";
      else if (error.code === "passkey_failed") problem = describe(error);
      else throw error;
    }
  }
}

/** Asks for the password (or a passkey): `{ password }`, `{ passkey: true }`, or null if cancelled. */
function askForProof(what, problem) {
  const dialog = $("proof-dialog");
  $("proof-why").textContent = `${what} needs your password again.`;
  $("proof-error").textContent = problem;
  $("proof-error").hidden = !problem;
  $("proof-password").value = "";
  $("proof-passkey").hidden = (state.passkeys ?? []).length === 0;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const password = $("proof-password").value;
      $("proof-password").value = "";
      if (dialog.returnValue === "password" && password) resolve({ password });
      else if (dialog.returnValue === "passkey") resolve({ passkey: true });
      else resolve(null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/** Asks which passkeys to remove while logging out everywhere: their ids, or null if cancelled. */
async function askLogoutEverywhere() {
  await loadPasskeys();
  const dialog = $("everywhere-dialog");
  fillChoices($("everywhere-passkeys"), state.passkeys);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm" ? ticked($("everywhere-passkeys")) : null), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function changePassword() {
  const current = $("current-password").value;
  const next = $("new-password").value;
  const removePasskeys = ticked($("password-passkeys"));
  let changed;
  try {
    changed = await state.session.changePassword(current, next, { removePasskeys });
  } catch (error) {
    if (error.code === "invalid_login") throw new Error("The current password is wrong. Nothing changed.");
    throw error;
  }
  $("current-password").value = "";
  $("new-password").value = "";
  await loadPasskeys();
  notice(`Your password was changed; ${sessionsEnded(changed.revoked)} elsewhere. ${keptPasskeys(changed.passkeys)}`);
}

async function logoutEverywhere() {
  const removePasskeys = await askLogoutEverywhere();
  if (removePasskeys === null) return;
  const waiting = await unsentCount();
  const queuedWrites = waiting > 0 ? await askAboutQueuedWrites(waiting) : "keep";
  if (queuedWrites === "cancel") return;
  let ended;
  const done = await withFreshProof("Logging out everywhere", async (proof) => {
    ended = await state.session.logoutAll({ ...proof, removePasskeys, queuedWrites });
  });
  if (!done) return;
  leave();
  notice(`You were logged out everywhere (${sessionsEnded(ended.revoked)}). ${keptPasskeys(ended.passkeys)}`);
}

async function addPasskey() {
  const label = $("passkey-label").value.trim() || "Passkey";
  const done = await withFreshProof("Adding a passkey", (proof) => state.session.addPasskey({ label, ...proof }));
  if (!done) return;
  await loadPasskeys();
  notice(`The passkey “${label}” was added.`);
}

let signingUp = false;
function selectTab(signup, focus = false) {
  signingUp = signup;
  $("tab-login").setAttribute("aria-selected", String(!signup));
  $("tab-signup").setAttribute("aria-selected", String(signup));
  // One tab stop for the tab list (arrow keys move within it); the form is the selected tab's panel.
  $("tab-login").tabIndex = signup ? -1 : 0;
  $("tab-signup").tabIndex = signup ? 0 : -1;
  $("auth-panel").setAttribute("aria-labelledby", signup ? "tab-signup" : "tab-login");
  if (focus) $(signup ? "tab-signup" : "tab-login").focus();
  $("auth-submit").textContent = signup ? "Create account" : "Log in";
  $("password").autocomplete = signup ? "new-password" : "current-password";
  $("invite-row").hidden = !signup;
}

// ---- wiring --------------------------------------------------------------------------------

function wire() {
  $("tab-login").addEventListener("click", () => selectTab(false));
  $("tab-signup").addEventListener("click", () => selectTab(true));
  for (const tab of [$("tab-login"), $("tab-signup")]) {
    tab.addEventListener("keydown", (event) => {
      const to = { ArrowRight: !signingUp, ArrowLeft: !signingUp, Home: false, End: true }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      selectTab(to, true);
    });
  }
  $("undo").addEventListener("click", () => busy($("undo"), undoDelete));
  $("outbox-retry").addEventListener("click", () => busy($("outbox-retry"), retryChanges));
  $("outbox-discard").addEventListener("click", () => busy($("outbox-discard"), discardChanges));
  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const credentials = { username: $("username").value.trim(), password: $("password").value, label: "budget" };
    const invite = $("invite").value.trim();
    void busy($("auth-submit"), async () => {
      const session = signingUp
        ? await bs.accounts.register({ ...credentials, ...(invite ? { invite } : {}) })
        : await bs.accounts.login(credentials);
      $("password").value = "";
      $("invite").value = "";
      await enter(session);
    });
  });
  $("passkey-login").addEventListener("click", () => busy($("passkey-login"), async () => {
    const username = $("username").value.trim();
    if (!username) throw new Error("Enter your username first.");
    await enter(await bs.accounts.loginWithPasskey({ username, label: "budget" }));
  }));
  $("account-open").addEventListener("click", () => busy($("account-open"), openAccount));
  $("account-close").addEventListener("click", closeAccount);
  $("passkey-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void accountAction($("add-passkey"), addPasskey);
  });
  $("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void accountAction($("change-password"), changePassword);
  });
  $("logout-all").addEventListener("click", () => accountAction($("logout-all"), logoutEverywhere));
  $("logout").addEventListener("click", () => busy($("logout"), async () => {
    // Writes still queued belong to this account: kept for its next login here (never sent with
    // anyone else's session), or discarded, as the user says.
    const waiting = await unsentCount();
    const queuedWrites = waiting > 0 ? await askAboutQueuedWrites(waiting) : "keep";
    if (queuedWrites === "cancel") return;
    state.follow?.close();
    await state.session.logout({ queuedWrites });
    leave();
  }));
  $("expense-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const cents = Math.round(Number.parseFloat($("amount").value) * 100);
    const editing = $("edit-id").value;
    const op = {
      t: editing ? "edit" : "add",
      id: editing || crypto.randomUUID(),
      date: $("date").value,
      cents,
      category: $("category").value.trim() || "Other",
      note: $("note").value.trim(),
    };
    void busy($("save-expense"), async () => {
      await record(op);
      resetForm();
    });
  });
  $("cancel-edit").addEventListener("click", resetForm);
  $("prev-month").addEventListener("click", () => { state.month = shiftMonth(state.month, -1); $("share-box").hidden = true; resetForm(); render(); });
  $("next-month").addEventListener("click", () => { state.month = shiftMonth(state.month, 1); $("share-box").hidden = true; resetForm(); render(); });
  $("export-csv").addEventListener("click", exportCsv);
  $("share-month").addEventListener("click", () => busy($("share-month"), shareMonth));
  $("copy-link").addEventListener("click", () => navigator.clipboard?.writeText($("share-link").value));
}

/** Asks what to do with `count` writes not sent yet: "keep", "discard" or "cancel". */
function askAboutQueuedWrites(count) {
  const dialog = $("logout-dialog");
  $("logout-pending").textContent = count === 1
    ? "1 change you made has not reached the server yet."
    : `${count} changes you made have not reached the server yet.`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue || "cancel"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function csvField(value) {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function exportCsv() {
  const lines = [["date", "category", "amount", "note"].join(",")];
  for (const e of monthExpenses(state.month)) {
    lines.push([e.date, e.category, (e.cents / 100).toFixed(2), e.note].map(csvField).join(","));
  }
  const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `budget-${state.month}.csv`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

async function start() {
  wire();
  bs.outbox.onChange((event) => {
    if (event.type === "stopped" && !state.readOnly) showProblem(`Your changes were not sent: ${describe(event.error)}`);
    // Refused for good (any change of this page, a retried one too): kept by the outbox, shown with why.
    if (event.type === "failed" && state.pending.has(event.id) && event.error?.code !== "write_discarded") {
      state.failed.set(event.id, state.pending.get(event.id));
      state.pending.delete(event.id);
      showProblem(`Not saved: ${describe(event.error)}`);
    }
    // A refused change retried (here or in another tab) waits again; one discarded is gone.
    if (event.type === "queued" && state.failed.has(event.id)) {
      state.pending.set(event.id, state.failed.get(event.id));
      state.failed.delete(event.id);
      state.retried.add(event.id);
      if (state.failed.size === 0) clearProblem();
      render();
    }
    if (event.type === "dropped" && state.failed.delete(event.id)) {
      clearProblemIfSettled();
      render();
    }
    if (event.type === "sent") {
      // The entry, once folded, takes the pending row's place (folding drops it by write id).
      const op = state.pending.get(event.id);
      if (state.folded && op) {
        // A retried change has no `durable` watched here: its shared month is refreshed now.
        const retried = state.retried.delete(event.id);
        void catchUp().then(() => retried && refreshShare(op.date?.slice(0, 7) ?? state.month)).catch(showError);
      }
      if (state.problem && event.pending === 0 && state.failed.size === 0) clearProblem();
    }
    void showOutbox();
  });
  // A session that ends while the page is open (expired, or ended on another device): ask for
  // the login again; the account's unsent changes wait for it.
  bs.accounts.onSessionChange((change) => {
    if (change.type !== "ended" || state.session === null) return;
    state.follow?.close();
    const waiting = state.pending.size;
    leave();
    const notice = $("auth-notice");
    notice.textContent = `Your session ${change.reason === "expired" ? "expired" : "was ended"}. Log in again${waiting ? ` to send your ${waiting === 1 ? "change" : `${waiting} changes`}, kept on this device` : ""}.`;
    notice.hidden = false;
    $("username").value = change.username;
  });
  addEventListener("online", () => void showOutbox());
  addEventListener("offline", () => void showOutbox());
  // The app's own files are kept by a service worker, so the page opens offline too.
  navigator.serviceWorker?.register("sw.js").catch(() => undefined);
  const share = location.hash.match(/^#share=([A-Za-z0-9_-]+)$/);
  try {
    if (share) {
      await openShared(share[1]);
      return;
    }
    const session = await bs.accounts.resume();
    if (session) await enter(session);
    else showAuth();
  } catch (error) {
    showError(error);
    if (!share) showAuth();
  }
}

void start();
