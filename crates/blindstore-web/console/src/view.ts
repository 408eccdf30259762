// What every view of the console is: shown into the page's view area with what the page knows
// (the access of the token, the answering node's health), refreshed by its own poller while it
// is shown, and stopped when another view is chosen.

import type { Access, Health } from "./api.js";
import { el, replace } from "./element.js";

export interface Context {
  readonly access: Access;
  /** The answering node's health as last read (no token needed), null before the first read. */
  health(): Health | null;
}

export interface View {
  readonly id: string;
  readonly title: string;
  /** Builds the view into `root` (empty) and starts refreshing it. */
  show(root: HTMLElement, context: Context): void;
  /** Stops refreshing; the page empties the view area. */
  hide(): void;
}

/**
 * Runs `task` now and then `intervalMs` after each run ends, so a slow answer never stacks
 * requests, until stopped. A failed run is the task's to report; polling goes on.
 */
export class Poller {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #again = false;
  #stopped = true;

  constructor(
    private readonly task: () => Promise<void>,
    public intervalMs: number,
  ) {}

  start(): void {
    this.#stopped = false;
    this.now();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Runs the task at once (after the current run, if one is under way). */
  now(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    void this.#run();
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      await this.task();
    } catch (error) {
      console.error(error);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      void this.#run();
    } else {
      this.#timer = setTimeout(() => void this.#run(), this.intervalMs);
    }
  }
}

/** A view's message area (a polite live region): the outcome of the last change. */
export function noticeArea(): HTMLElement {
  return el("div", { class: "notices", role: "status" });
}

/** Shows `text` in `area`; an error is also announced at once. */
export function notify(area: HTMLElement, text: string, kind: "ok" | "error" | "info" = "ok"): void {
  replace(
    area,
    el(
      "p",
      { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : null },
      el("span", {}, text),
      el("button", { type: "button", class: "notice-close", "aria-label": "Dismiss message", onclick: () => replace(area) }, "×"),
    ),
  );
}

/** The heading a view starts with; focused (for keyboard and screen reader users) when chosen. */
export function viewHeading(title: string, ...after: (Node | string)[]): HTMLElement {
  return el("div", { class: "view-head" }, el("h2", { tabindex: "-1", class: "view-title" }, title), ...after);
}

/** "Updated 09:52:14", for a view's heading line: when its figures were last read. */
export function updatedAt(element: HTMLElement, ok: boolean): void {
  const time = new Date().toLocaleTimeString("en-GB", { hour12: false });
  element.textContent = ok ? `Updated ${time}` : `Last read failed at ${time}`;
}

/** A note that a view needs the admin token. */
export function needsAdmin(what: string): HTMLElement {
  return el(
    "p",
    { class: "notice notice-info" },
    `${what} need the admin token: you are signed in with the metrics token, which reads /v1/metrics and this node's health only. Sign out and sign in with the admin token to see and change them.`,
  );
}

/** A table inside a region that scrolls sideways on narrow screens (and by keyboard). */
export function scrollingTable(label: string, table: HTMLTableElement): HTMLElement {
  return el("div", { class: "table-wrap", role: "region", "aria-label": `${label} (table)`, tabindex: "0" }, table);
}
