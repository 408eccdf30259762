// What every view of the console is: shown into the page's view area with what the page knows
// (the access of the token, the answering node's health), refreshed by its own poller while it
// is shown, and stopped when another view is chosen.
import { el, replace } from "./element.js";
/**
 * Runs `task` now and then `intervalMs` after each run ends, so a slow answer never stacks
 * requests, until stopped. A failed run is the task's to report; polling goes on.
 */
export class Poller {
    task;
    intervalMs;
    #timer;
    #running = false;
    #again = false;
    #stopped = true;
    constructor(task, intervalMs) {
        this.task = task;
        this.intervalMs = intervalMs;
    }
    start() {
        this.#stopped = false;
        this.now();
    }
    stop() {
        this.#stopped = true;
        clearTimeout(this.#timer);
    }
    /** Runs the task at once (after the current run, if one is under way). */
    now() {
        if (this.#stopped)
            return;
        if (this.#running) {
            this.#again = true;
            return;
        }
        clearTimeout(this.#timer);
        void this.#run();
    }
    async #run() {
        this.#running = true;
        try {
            await this.task();
        }
        catch (error) {
            console.error(error);
        }
        finally {
            this.#running = false;
        }
        if (this.#stopped)
            return;
        if (this.#again) {
            this.#again = false;
            void this.#run();
        }
        else {
            this.#timer = setTimeout(() => void this.#run(), this.intervalMs);
        }
    }
}
/** A view's message area (a polite live region): the outcome of the last change. */
export function noticeArea() {
    return el("div", { class: "notices", role: "status" });
}
/** Shows `text` in `area`; an error is also announced at once. */
export function notify(area, text, kind = "ok") {
    replace(area, el("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : null }, el("span", {}, text), el("button", { type: "button", class: "notice-close", "aria-label": "Dismiss message", onclick: () => replace(area) }, "×")));
}
/** The heading a view starts with; focused (for keyboard and screen reader users) when chosen. */
export function viewHeading(title, ...after) {
    return el("div", { class: "view-head" }, el("h2", { tabindex: "-1", class: "view-title" }, title), ...after);
}
/** "Updated 09:52:14", for a view's heading line: when its figures were last read. */
export function updatedAt(element, ok) {
    const time = new Date().toLocaleTimeString("en-GB", { hour12: false });
    element.textContent = ok ? `Updated ${time}` : `Last read failed at ${time}`;
}
/** A note that a view needs the admin token. */
export function needsAdmin(what) {
    return el("p", { class: "notice notice-info" }, `${what} need the admin token: you are signed in with the metrics token, which reads /v1/metrics and this node's health only. Sign out and sign in with the admin token to see and change them.`);
}
/** A table inside a region that scrolls sideways on narrow screens (and by keyboard). */
export function scrollingTable(label, table) {
    return el("div", { class: "table-wrap", role: "region", "aria-label": `${label} (table)`, tabindex: "0" }, table);
}
