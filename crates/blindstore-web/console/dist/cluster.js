// The cluster view: the members as the answering node sees them, with each one's health (or
// why it could not be read), and the membership changes an operator makes here: drain, cancel
// a drain, remove. A drain's progress is the node's chunks_held falling, read every second.
import { call, messageOf } from "./api.js";
import { confirmChange } from "./dialog.js";
import { el, fact, hiddenText, keepingFocus, pill, replace } from "./element.js";
import * as format from "./format.js";
import { needsAdmin, noticeArea, notify, Poller, scrollingTable, updatedAt, viewHeading } from "./view.js";
/** How often the members are read; while a node drains, every second. */
const INTERVAL_MS = 2_000;
const DRAINING_INTERVAL_MS = 1_000;
export class ClusterView {
    id = "cluster";
    title = "Cluster";
    #content = el("div");
    #notices = noticeArea();
    #updated = el("span", { class: "updated" });
    #poller = null;
    #context = null;
    #overview = null;
    #problem = null;
    #drains = new Map();
    /** Names as members last told them: a member that stops answering keeps its name here. */
    #names = new Map();
    show(root, context) {
        this.#context = context;
        replace(root, viewHeading("Cluster", this.#updated), this.#notices, this.#content);
        if (context.access === "metrics") {
            this.#renderThisNode();
            this.#poller = new Poller(async () => this.#renderThisNode(), INTERVAL_MS);
        }
        else {
            this.#render();
            this.#poller = new Poller(() => this.#refresh(), INTERVAL_MS);
        }
        this.#poller.start();
    }
    hide() {
        this.#poller?.stop();
    }
    async #refresh() {
        try {
            this.#overview = await call("GET", "/v1/admin/cluster/overview");
            this.#problem = null;
            this.#watchDrains(this.#overview);
            for (const m of this.#overview.members)
                if (m.health?.name)
                    this.#names.set(m.node_id, m.health.name);
            updatedAt(this.#updated, true);
        }
        catch (error) {
            this.#problem = messageOf(error);
            updatedAt(this.#updated, false);
        }
        if (this.#poller)
            this.#poller.intervalMs = this.#drains.size > 0 ? DRAINING_INTERVAL_MS : INTERVAL_MS;
        keepingFocus(this.#content, () => this.#render());
    }
    #watchDrains(overview) {
        const now = Date.now();
        for (const id of [...this.#drains.keys()]) {
            if (!overview.members.some((m) => m.node_id === id && m.draining))
                this.#drains.delete(id);
        }
        for (const m of overview.members) {
            if (!m.draining || !m.health)
                continue;
            let watch = this.#drains.get(m.node_id);
            if (!watch)
                this.#drains.set(m.node_id, (watch = { start: m.health.chunks_held, samples: [] }));
            watch.start = Math.max(watch.start, m.health.chunks_held);
            watch.samples.push({ atMs: now, chunks: m.health.chunks_held });
            while (watch.samples.length > 2 && watch.samples[0].atMs < now - 10_000)
                watch.samples.shift();
        }
    }
    /** "node 3 (ams-3)", with the name last heard if the member does not answer now. */
    #nameOf(m) {
        const name = m.health?.name || this.#names.get(m.node_id);
        return name ? `node ${m.node_id} (${name})` : `node ${m.node_id}`;
    }
    #render() {
        const overview = this.#overview;
        const parts = [];
        if (this.#problem) {
            parts.push(el("p", { class: "notice notice-error" }, `The members could not be read: ${this.#problem}`));
        }
        if (!overview) {
            parts.push(this.#problem ? null : el("p", { class: "muted" }, "Reading the members…"));
            replace(this.#content, ...parts);
            return;
        }
        parts.push(summary(overview));
        const drains = overview.members.filter((m) => m.draining);
        if (drains.length > 0)
            parts.push(this.#drainSection(drains));
        parts.push(scrollingTable("Members", this.#membersTable(overview)), el("p", { class: "footnote" }, "Lag: log entries the leader has that the member has not acknowledged (when the answering node leads), else entries the member has not applied yet. Chunks held, under-replicated chunks and the repair backlog are each node's own counts."));
        if (overview.removed.length > 0) {
            parts.push(el("p", { class: "footnote" }, `Removed for good (ids never reused): ${overview.removed.join(", ")}.`));
        }
        replace(this.#content, ...parts);
    }
    #drainSection(members) {
        return el("section", { class: "panel drains", "aria-labelledby": "drains-title" }, el("h3", { id: "drains-title" }, members.length === 1 ? "Drain in progress" : "Drains in progress"), ...members.map((m) => this.#drainProgress(m)));
    }
    #drainProgress(m) {
        const name = this.#nameOf(m);
        const watch = this.#drains.get(m.node_id);
        if (!m.health || !watch) {
            return el("div", { class: "drain" }, el("p", {}, `${capital(name)} is draining; it does not answer, so its progress is unknown.`));
        }
        const held = m.health.chunks_held;
        const moved = Math.max(0, watch.start - held);
        const rate = drainRate(watch);
        const id = `drain-${m.node_id}`;
        const progress = el("progress", { id, max: Math.max(1, watch.start), value: watch.start === 0 ? 1 : moved });
        let text;
        if (held === 0) {
            text = `Drained: it holds no chunks and can be removed now (${format.count(watch.start)} moved since this page saw the drain start).`;
        }
        else {
            const left = rate !== null && rate > 0 ? `, about ${format.duration(held / rate)} left` : "";
            text = `${format.count(moved)} of ${format.count(watch.start)} chunks moved, ${format.count(held)} held · ${rate === null ? "measuring the rate" : format.perSecond(rate, "chunks")}${left}`;
        }
        return el("div", { class: "drain", "data-node": m.node_id }, el("label", { for: id, class: "drain-label" }, capital(name)), progress, el("p", { class: "drain-text" }, text));
    }
    #membersTable(overview) {
        const head = [
            "Node",
            "Role",
            "Reachable",
            "Draining",
            "Term",
            "Applied",
            "Lag",
            "Chunks held",
            "Under-replicated",
            "Repair backlog",
            "Repair rate (copies/s)",
            "Build",
            "Cluster TLS",
            "Actions",
        ];
        return el("table", { class: "data members" }, el("caption", { class: "visually-hidden" }, "Cluster members and their health"), el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", { scope: "col", class: i >= 4 && i <= 10 ? "num" : null }, h)))), el("tbody", {}, ...overview.members.map((m) => this.#memberRow(overview, m))));
    }
    #memberRow(overview, m) {
        const h = m.health;
        const reachable = h !== null;
        const lag = lagOf(overview, m);
        const known = h?.name || this.#names.get(m.node_id);
        const nodeCell = el("th", { scope: "row" }, el("span", { class: "node-cell" }, el("span", { class: "node-id" }, `${m.node_id}`), known ? el("span", { class: "node-name" }, known) : null, overview.leader === m.node_id ? pill("leader", "info") : null));
        const reach = reachable
            ? pill("yes", "ok")
            : el("span", { class: "unreachable-cell" }, pill("✕ no", "bad"), el("span", { class: "error-text" }, m.error ?? "no answer"));
        return el("tr", { class: reachable ? null : "unreachable", "data-node": m.node_id }, nodeCell, el("td", {}, m.role), el("td", {}, reach), el("td", {}, m.draining ? pill("draining", "warn") : el("span", { class: "muted" }, "no")), num(h?.term), num(h?.last_applied), el("td", { class: "num" }, lag === null ? format.UNKNOWN : lag > 0 ? pill(format.count(lag), lag > 1000 ? "warn" : "plain") : "0"), num(h?.chunks_held), el("td", { class: "num" }, h ? (h.under_replicated > 0 ? pill(format.count(h.under_replicated), "warn") : "0") : format.UNKNOWN), num(h?.repair_backlog), el("td", { class: "num" }, format.decimal(h?.repair_rate)), el("td", {}, h ? el("span", {}, h.version || "unknown", el("span", { class: "muted" }, ` · level ${h.feature_level}`)) : format.UNKNOWN), el("td", {}, h ? (h.rpc_tls ? "mutual TLS" : "off") : format.UNKNOWN), el("td", {}, el("span", { class: "actions" }, ...this.#actions(overview, m))));
    }
    #actions(overview, m) {
        const name = this.#nameOf(m);
        const drain = m.draining
            ? el("button", { type: "button", class: "button button-small", "data-focus": `undrain-${m.node_id}`, onclick: () => void this.#undrain(m) }, "Cancel drain", hiddenText(` of ${name}`))
            : el("button", { type: "button", class: "button button-small", "data-focus": `drain-${m.node_id}`, onclick: () => void this.#drain(m) }, "Drain", hiddenText(` ${name}`));
        const remove = el("button", { type: "button", class: "button button-small button-danger-quiet", "data-focus": `remove-${m.node_id}`, onclick: () => void this.#remove(overview, m) }, "Remove…", hiddenText(` ${name}`));
        return [drain, remove];
    }
    async #drain(m) {
        const name = this.#nameOf(m);
        const held = m.health ? `its ${format.count(m.health.chunks_held)} chunks` : "its chunks";
        const result = await confirmChange({
            title: `Drain ${name}?`,
            body: [
                el("p", {}, `${capital(name)} stops owning chunks, and ${held} are copied to their other owners. Reads and writes go on meanwhile.`),
                el("p", {}, "When it holds no chunks it can be removed. A drain can be cancelled; the node then owns chunks again."),
            ],
            confirm: `Drain node ${m.node_id}`,
            run: async () => {
                await call("POST", `/v1/admin/cluster/nodes/${m.node_id}/drain`);
                if (m.health)
                    this.#drains.set(m.node_id, { start: m.health.chunks_held, samples: [] });
                return `${capital(name)} is draining: its chunks are moving to the other nodes.`;
            },
        });
        this.#after(result);
    }
    async #undrain(m) {
        const name = this.#nameOf(m);
        const result = await confirmChange({
            title: `Cancel the drain of ${name}?`,
            body: [el("p", {}, `${capital(name)} owns chunks again, and chunks move back to it at the next repair passes.`)],
            confirm: "Cancel the drain",
            run: async () => {
                await call("DELETE", `/v1/admin/cluster/nodes/${m.node_id}/drain`);
                this.#drains.delete(m.node_id);
                return `${capital(name)} is no longer draining.`;
            },
        });
        this.#after(result);
    }
    async #remove(overview, m) {
        const name = this.#nameOf(m);
        // As the leader counts: members able to vote afterwards are the others not being drained
        // (voters, and storage nodes it would promote).
        const left = overview.members.filter((o) => o.node_id !== m.node_id && !o.draining).length;
        const belowThree = left < 3;
        const force = el("input", { type: "checkbox", id: "remove-force" });
        const below = el("input", { type: "checkbox", id: "remove-below-three" });
        const typed = el("input", { type: "text", id: "remove-confirm", inputmode: "numeric", autocomplete: "off", spellcheck: "false", class: "input-short" });
        const held = m.health?.chunks_held;
        const fields = el("div", { class: "fields" }, el("div", { class: "check" }, force, el("label", { for: "remove-force" }, "Force: remove it at once, without a drain (for a dead node); repair restores the copies it held")), belowThree
            ? el("div", { class: "warning-box" }, el("p", {}, el("strong", {}, "Fewer than three voters. "), `Removing ${name} leaves ${left} member${left === 1 ? "" : "s"} able to vote. A cluster needs a majority of its voters: with two, it stops committing when either one fails. Add a node first if you can (it becomes a voter as this one leaves).`), el("div", { class: "check" }, below, el("label", { for: "remove-below-three" }, "Remove it anyway, leaving fewer than three voters")))
            : null, el("label", { for: "remove-confirm", class: "field-label" }, `Type the node id, ${m.node_id}, to confirm`), typed);
        const result = await confirmChange({
            title: `Remove ${name}?`,
            body: [
                el("p", {}, `${capital(name)}, a ${m.role}, leaves the cluster for good: it serves no more requests, and its id is never used again.`),
                !m.draining || (held ?? 0) > 0
                    ? el("p", {}, m.draining
                        ? `It is draining and still holds ${format.count(held ?? null)} chunks: without force the removal waits for none to be left.`
                        : "It is not drained: without force, drain it first so no copy is lost.")
                    : el("p", {}, "It is drained: it holds no chunks."),
            ],
            fields,
            confirm: `Remove node ${m.node_id}`,
            danger: true,
            ready: () => {
                if (typed.value.trim() !== String(m.node_id))
                    return `Type ${m.node_id} to confirm.`;
                if (belowThree && !below.checked)
                    return "Tick “Remove it anyway, leaving fewer than three voters” to go on.";
                return true;
            },
            run: async () => {
                const query = new URLSearchParams();
                if (force.checked)
                    query.set("force", "true");
                if (belowThree && below.checked)
                    query.set("below_three_voters", "true");
                const q = query.toString();
                await call("DELETE", `/v1/admin/cluster/nodes/${m.node_id}${q ? `?${q}` : ""}`);
                return `${capital(name)} was removed from the cluster.`;
            },
        });
        this.#after(result);
    }
    #after(result) {
        if (result !== null)
            notify(this.#notices, result, "ok");
        this.#poller?.now();
    }
    /** With the metrics token: the answering node's own health, the one thing it may read. */
    #renderThisNode() {
        const h = this.#context?.health() ?? null;
        replace(this.#content, needsAdmin("The members, their health and the membership actions"), h
            ? el("dl", { class: "facts" }, fact("Node", nodeName(h.node_id, h)), fact("Role", h.role), fact("Leader", h.leader === null ? "none known" : `node ${h.leader}`), fact("Term", format.count(h.term)), fact("Applied", format.count(h.last_applied)), fact("Chunks held", format.count(h.chunks_held)), fact("Cluster version", String(h.cluster_version)), fact("Build", `${h.version} · level ${h.feature_level}`))
            : el("p", { class: "muted" }, "Reading this node's health…"));
    }
}
/** The header line: the cluster, its leader and term, and which node answered. */
function summary(overview) {
    const byId = new Map(overview.members.map((m) => [m.node_id, m.health]));
    const any = overview.members.find((m) => m.health)?.health ?? null;
    const answering = byId.get(overview.answered_by) ?? null;
    const leader = overview.leader === null ? "none known" : nodeName(overview.leader, byId.get(overview.leader) ?? null);
    return el("dl", { class: "facts" }, fact("Cluster id", el("code", {}, answering?.cluster_id ?? any?.cluster_id ?? "not set")), fact("Cluster version", String(answering?.cluster_version ?? any?.cluster_version ?? format.UNKNOWN)), fact("Leader", leader), fact("Term", format.count(overview.term)), fact("Answered by", nodeName(overview.answered_by, answering)), fact("Members", `${overview.members.length} (${overview.members.filter((m) => m.role === "voter").length} voters)`));
}
function num(value) {
    return el("td", { class: "num" }, format.count(value));
}
/** "Node 3 (ams-3)", to start a sentence. */
export function capital(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
}
/** "node 3 (ams-3)". */
export function nodeName(id, health) {
    return health?.name ? `node ${id} (${health.name})` : `node ${id}`;
}
/** How far the member is behind: by the leader's count when known, else by its own. */
function lagOf(overview, m) {
    if (overview.leader_last_log_index !== null && m.matched !== null) {
        return Math.max(0, overview.leader_last_log_index - m.matched);
    }
    const h = m.health;
    if (h && h.last_log_index !== null && h.last_applied !== null)
        return Math.max(0, h.last_log_index - h.last_applied);
    return null;
}
/** Chunks per second a drain moved over the last few seconds; null until two reads apart. */
function drainRate(watch) {
    const last = watch.samples[watch.samples.length - 1];
    const first = watch.samples.find((s) => last && s.atMs >= last.atMs - 5_000);
    if (!first || !last || last.atMs - first.atMs < 900)
        return null;
    return Math.max(0, (first.chunks - last.chunks) / ((last.atMs - first.atMs) / 1000));
}
