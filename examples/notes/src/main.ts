// The notes page: an account (OPAQUE: the password never leaves the page), a chain whose keys
// live in the account's encrypted vault, notes written to it, and every note followed live.
// OPAQUE is loaded only when the person logs in or signs up.
import { Blindstore, ChainKeys, InvalidLoginError, AccountExistsError, type Chain, type Entry, type Session, type Subscription } from "@blindstore/sdk";
import { ZONE, count, plain, show, status } from "./notes";

/** The newest notes shown; the count says how many there are. */
const SHOWN = 100;

const store = new Blindstore({ url: location.origin, zone: ZONE });
const loginForm = document.getElementById("login") as HTMLFormElement;
const notesView = document.getElementById("notes-view") as HTMLElement;
const list = document.getElementById("notes") as HTMLUListElement;
let chain: Chain | undefined;
let following: Subscription | undefined;

async function open(session: Session): Promise<void> {
  status("Opening your notes…");
  // The chain's keys are kept in the vault: any device that logs in gets them back.
  const saved = await session.vault.get("notes");
  chain = saved === undefined ? await store.createChain() : store.openChain(await ChainKeys.fromJSON(saved));
  if (saved === undefined) await session.vault.put("notes", chain.keys);
  // Every note, verified: from this browser's last checkpoint, then what is new (a reload of a
  // chain with years of notes reads only those since).
  const notes = await chain.fold<Entry[]>({ name: "notes", initial: () => [], apply: (all, entry) => (all.push(entry), all), toJSON: (all) => all.map(plain), fromJSON: (json) => json as Entry[] });
  const render = () => {
    list.replaceChildren();
    for (const entry of notes.state.slice(-SHOWN)) show(list, entry);
  };
  render();
  following?.close();
  following = chain.follow({
    from: notes.next,
    prev: notes.head,
    onEntry: (entry) => {
      notes.add(entry);
      render();
    },
    onError: (error) => status(`Live updates stopped: ${(error as Error).message}`),
  });
  const next = notes.next;
  const reader = btoa(JSON.stringify(chain.keys.forReader()));
  (document.getElementById("share") as HTMLInputElement).value = `${location.origin}/viewer.html#${reader}`;
  loginForm.hidden = true;
  notesView.hidden = false;
  status(`Logged in as ${session.username}. ${count(next)}.`);
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = ((event as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? "login";
  const username = (document.getElementById("username") as HTMLInputElement).value;
  const password = (document.getElementById("password") as HTMLInputElement).value;
  status(action === "register" ? "Creating your account…" : "Logging in…");
  try {
    const session = action === "register" ? await store.accounts.register({ username, password }) : await store.accounts.login({ username, password });
    await open(session);
  } catch (error) {
    if (error instanceof InvalidLoginError) status("Wrong username or password.");
    else if (error instanceof AccountExistsError) status("That username is taken: log in instead.");
    else status(`Something failed: ${(error as Error).message}`);
  }
});

document.getElementById("add")!.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("text") as HTMLInputElement;
  const text = input.value;
  status("Saving…");
  try {
    await chain!.appendJson({ text }); // the live subscription shows it
    input.value = "";
    status("Saved.");
  } catch (error) {
    status(`Not saved: ${(error as Error).message}`);
  }
});

document.getElementById("logout")!.addEventListener("click", async () => {
  following?.close();
  await store.accounts.session?.logout();
  notesView.hidden = true;
  loginForm.hidden = false;
  status("Logged out.");
});

// A session remembered on this device opens without the password (and without OPAQUE).
const resumed = await store.accounts.resume().catch(() => null);
if (resumed === null) {
  loginForm.hidden = false;
  status("Log in or create an account.");
} else {
  await open(resumed);
}
