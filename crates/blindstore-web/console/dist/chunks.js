// The chunks view: the cluster's replication health (each member's counts added up, from the
// overview) and the chunks this node or gateway was asked for most since it started.
import { call, messageOf } from "./api.js";
import { el, keepingFocus, pill, replace } from "./element.js";
import * as format from "./format.js";
import { capital, nodeName } from "./cluster.js";
import { needsAdmin, Poller, scrollingTable, updatedAt, viewHeading } from "./view.js";
const INTERVAL_MS = 3_000;
export class ChunksView {
    id = "chunks";
    title = "Chunks";
    #content = el("div");
    #updated = el("span", { class: "updated" });
    #poller = null;
    #context = null;
    show(root, context) {
        this.#context = context;
        replace(root, viewHeading("Chunks", this.#updated), this.#content);
        replace(this.#content, el("p", { class: "muted" }, "Reading…"));
        this.#poller = new Poller(() => (context.access === "admin" ? this.#refresh() : this.#refreshThisNode()), INTERVAL_MS);
        this.#poller.start();
    }
    hide() {
        this.#poller?.stop();
    }
    async #refresh() {
        const [overview, most] = await Promise.allSettled([
            call("GET", "/v1/admin/cluster/overview"),
            call("GET", "/v1/admin/chunks/most-requested"),
        ]);
        updatedAt(this.#updated, overview.status === "fulfilled" && most.status === "fulfilled");
        keepingFocus(this.#content, () => replace(this.#content, overview.status === "fulfilled" ? health(overview.value) : failed("The replication health", overview.reason), most.status === "fulfilled" ? mostRequested(most.value, this.#context?.health() ?? null) : failed("The most requested chunks", most.reason)));
    }
    async #refreshThisNode() {
        const h = this.#context?.health() ?? null;
        replace(this.#content, needsAdmin("The cluster's replication health and the most requested chunks"), h && h.role !== "gateway"
            ? el("dl", { class: "tiles" }, tile("Under-replicated (this node)", format.count(h.under_replicated), h.under_replicated > 0), tile("Repair backlog (this node)", format.count(h.repair_backlog), h.repair_backlog > 0), tile("Repair rate (this node)", format.perSecond(h.repair_rate, "copies"), false), tile("Chunks held (this node)", format.count(h.chunks_held), false))
            : null);
    }
}
function health(overview) {
    const answered = overview.members.filter((m) => m.health);
    const total = (pick) => answered.reduce((sum, m) => sum + pick(m.health), 0);
    const under = total((h) => h.under_replicated);
    const backlog = total((h) => h.repair_backlog);
    const rate = total((h) => h.repair_rate);
    const missing = overview.members.filter((m) => !m.health);
    const table = el("table", { class: "data compact" }, el("caption", { class: "visually-hidden" }, "Replication by member"), el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Node"), el("th", { scope: "col", class: "num" }, "Chunks held"), el("th", { scope: "col", class: "num" }, "Under-replicated"), el("th", { scope: "col", class: "num" }, "Repair backlog"), el("th", { scope: "col", class: "num" }, "Repair rate"))), el("tbody", {}, ...overview.members.map((m) => {
        const h = m.health;
        return el("tr", { class: h ? null : "unreachable" }, el("th", { scope: "row" }, capital(nodeName(m.node_id, h)), h ? null : el("span", { class: "error-text" }, " — did not answer")), el("td", { class: "num" }, format.count(h?.chunks_held)), el("td", { class: "num" }, format.count(h?.under_replicated)), el("td", { class: "num" }, format.count(h?.repair_backlog)), el("td", { class: "num" }, h ? format.perSecond(h.repair_rate, "copies") : format.UNKNOWN));
    })));
    return el("section", { class: "section", "aria-labelledby": "replication-title" }, el("h3", { id: "replication-title" }, "Replication health"), el("dl", { class: "tiles" }, tile("Under-replicated chunks", format.count(under), under > 0), tile("Repair backlog", format.count(backlog), backlog > 0), tile("Repair rate", format.perSecond(rate, "copies"), false), tile("Members answering", `${answered.length} of ${overview.members.length}`, missing.length > 0)), missing.length > 0
        ? el("p", { class: "notice notice-warn" }, `${missing.map((m) => capital(nodeName(m.node_id, null))).join(", ")} did not answer: the sums leave out ${missing.length === 1 ? "its" : "their"} counts, and the chunks ${missing.length === 1 ? "it holds" : "they hold"} are counted by the others' next repair passes.`)
        : null, el("p", { class: "footnote" }, "Under-replicated: chunks with fewer reachable copies than the replication factor at each node's last repair pass (each counted by one holder). Repair backlog: copies the nodes still owe, rebalancing included."), scrollingTable("Replication by member", table));
}
function mostRequested(most, answering) {
    const who = answering ? (answering.role === "gateway" ? "this gateway" : nodeName(answering.node_id, answering)) : "this node";
    const rows = most.most_requested;
    return el("section", { class: "section", "aria-labelledby": "most-title" }, el("h3", { id: "most-title" }, "Most requested chunks"), el("p", { class: "footnote" }, `Chunk reads answered by ${who} since it started.`), rows.length === 0
        ? el("p", { class: "muted" }, "No chunk was read here yet.")
        : scrollingTable("Most requested chunks", el("table", { class: "data most" }, el("caption", { class: "visually-hidden" }, "Most requested chunks"), el("thead", {}, el("tr", {}, el("th", { scope: "col", class: "num" }, "#"), el("th", { scope: "col" }, "Zone"), el("th", { scope: "col" }, "Chunk (SHA-256)"), el("th", { scope: "col", class: "num" }, "Requests"))), el("tbody", {}, ...rows.map((r, i) => el("tr", {}, el("td", { class: "num" }, i + 1), el("td", {}, el("code", {}, r.zone)), el("td", {}, el("code", { class: "hash" }, r.hash)), el("td", { class: "num" }, format.count(r.requests))))))));
}
function tile(name, value, attention) {
    return el("div", { class: `tile${attention ? " tile-attention" : ""}` }, el("dt", {}, name), el("dd", {}, value, attention ? pill("attention", "warn") : null));
}
function failed(what, reason) {
    return el("p", { class: "notice notice-error" }, `${what} could not be read: ${messageOf(reason)}`);
}
