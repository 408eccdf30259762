// The zones view: every zone's usage against its quotas, its settings and registration, and
// the three changes made here (quotas, who may write, who may register), each confirmed first.
import { call, messageOf } from "./api.js";
import { confirmChange } from "./dialog.js";
import { bar, el, fact, hiddenText, keepingFocus, pill, replace } from "./element.js";
import * as format from "./format.js";
import { needsAdmin, noticeArea, notify, Poller, scrollingTable, updatedAt, viewHeading } from "./view.js";
const INTERVAL_MS = 5_000;
const QUOTA_FIELDS = [
    { key: "max_chains", label: "Chains", bytes: false },
    { key: "max_entries", label: "Entries", bytes: false },
    { key: "max_chunks", label: "Chunks per node", bytes: false },
    { key: "max_chunk_bytes", label: "Chunk bytes per node", bytes: true },
];
export class ZonesView {
    id = "zones";
    title = "Zones";
    #table = el("div");
    #detail = el("div", { id: "zone-detail" });
    #notices = noticeArea();
    #updated = el("span", { class: "updated" });
    #poller = new Poller(() => this.#refresh(), INTERVAL_MS);
    #zones = null;
    #problem = null;
    /** The zone whose settings are shown for change, and the values its forms were built from. */
    #selected = null;
    #formsOf = null;
    /** A change was made: the forms are built again from the next read started after it. */
    #formsStale = false;
    show(root, context) {
        if (context.access === "metrics") {
            replace(root, viewHeading("Zones"), needsAdmin("Zones, their usage and settings"));
            return;
        }
        replace(root, viewHeading("Zones", this.#updated), this.#notices, this.#table, this.#detail);
        replace(this.#table, el("p", { class: "muted" }, "Reading the zones…"));
        this.#formsOf = null;
        this.#poller.start();
    }
    hide() {
        this.#poller.stop();
    }
    async #refresh() {
        // Taken before the read: a read already under way when a change was made may answer with
        // the settings from before it, and forms built from it would show those.
        const rebuild = this.#formsStale;
        this.#formsStale = false;
        try {
            this.#zones = (await call("GET", "/v1/admin/zones")).zones;
            this.#problem = null;
            updatedAt(this.#updated, true);
            if (rebuild)
                this.#formsOf = null;
        }
        catch (error) {
            this.#problem = messageOf(error);
            updatedAt(this.#updated, false);
            this.#formsStale ||= rebuild;
        }
        keepingFocus(this.#table, () => this.#renderTable());
        this.#renderDetail();
    }
    #renderTable() {
        const zones = this.#zones;
        const problem = this.#problem ? el("p", { class: "notice notice-error" }, `The zones could not be read: ${this.#problem}`) : null;
        if (!zones) {
            replace(this.#table, problem);
            return;
        }
        if (zones.length === 0) {
            replace(this.#table, problem, el("p", { class: "muted" }, "No zones yet. Create one with `blindstore zone create NAME`."));
            return;
        }
        const head = ["Zone", "Chains", "Entries", "Chunks (this node)", "Bytes (this node)", "Writes", "Registration", "Accounts", ""];
        const table = el("table", { class: "data zones" }, el("caption", { class: "visually-hidden" }, "Zones: usage against quotas"), el("thead", {}, el("tr", {}, ...head.map((h) => (h === "" ? el("th", { scope: "col" }, hiddenText("Actions")) : el("th", { scope: "col" }, h))))), el("tbody", {}, ...zones.map((z) => this.#zoneRow(z))));
        replace(this.#table, problem, scrollingTable("Zones", table), el("p", { class: "footnote" }, "Chains and entries count the whole zone; chunks and bytes what the answering node holds for it, against the per-node quota."));
    }
    #zoneRow(z) {
        const selected = this.#selected === z.zone;
        return el("tr", { class: selected ? "selected" : null }, el("th", { scope: "row" }, el("code", {}, z.zone)), usageCell(z.usage.chains, z.quota.max_chains, format.count), usageCell(z.usage.entries, z.quota.max_entries, format.count), usageCell(z.usage.chunks, z.quota.max_chunks, format.count), usageCell(z.usage.bytes, z.quota.max_chunk_bytes, format.bytes), el("td", {}, pill(z.settings.writes, z.settings.writes === "open" ? "warn" : "plain")), el("td", {}, pill(z.registration.policy, z.registration.policy === "closed" ? "plain" : "info")), usageCell(z.accounts.accounts, z.registration.max_accounts, format.count), el("td", {}, el("button", {
            type: "button",
            class: "button button-small",
            "aria-expanded": selected ? "true" : "false",
            "aria-controls": "zone-detail",
            "data-focus": `manage-${z.zone}`,
            onclick: () => this.#select(z.zone),
        }, "Manage", el("span", { class: "visually-hidden" }, ` zone ${z.zone}`))));
    }
    #select(zone) {
        this.#selected = zone;
        this.#formsOf = null;
        keepingFocus(this.#table, () => this.#renderTable());
        this.#renderDetail();
        this.#detail.querySelector("h3")?.focus();
    }
    #renderDetail() {
        const zone = this.#zones?.find((z) => z.zone === this.#selected);
        if (!zone) {
            replace(this.#detail, this.#zones && this.#zones.length > 0 ? el("p", { class: "muted" }, "Choose Manage on a zone to see its settings and change them.") : null);
            return;
        }
        // The forms are built once per selected zone (and after a change), so a refresh never
        // overwrites what the operator is typing; the facts beside them follow each refresh.
        if (this.#formsOf === zone.zone) {
            const facts = this.#detail.querySelector(".zone-facts");
            facts?.replaceWith(zoneFacts(zone));
            return;
        }
        this.#formsOf = zone.zone;
        replace(this.#detail, el("section", { class: "panel zone-detail", "aria-labelledby": "zone-detail-title" }, el("h3", { id: "zone-detail-title", tabindex: "-1" }, "Zone ", el("code", {}, zone.zone)), zoneFacts(zone), el("div", { class: "forms" }, this.#quotaForm(zone), this.#writesForm(zone), this.#registrationForm(zone))));
    }
    #quotaForm(zone) {
        const inputs = QUOTA_FIELDS.map((f) => {
            const id = `quota-${f.key}`;
            const hint = el("span", { class: "hint", id: `${id}-hint` });
            const input = el("input", {
                id,
                name: f.key,
                type: "text",
                inputmode: "numeric",
                autocomplete: "off",
                value: String(zone.quota[f.key]),
                "aria-describedby": `${id}-hint`,
                class: "input-number",
            });
            const describe = () => {
                const v = input.value.trim();
                hint.textContent = !/^\d+$/.test(v) ? "a whole number" : f.bytes ? `= ${format.bytes(Number(v))}` : `= ${format.count(Number(v))}`;
            };
            input.addEventListener("input", describe);
            describe();
            return { field: f, input, row: el("div", { class: "field" }, el("label", { for: id }, f.label), input, hint) };
        });
        const form = el("form", { class: "zone-form", novalidate: true }, el("h4", {}, "Quotas"), ...inputs.map((i) => i.row), el("button", { type: "submit", class: "button button-primary" }, "Save quotas…"));
        form.addEventListener("submit", (event) => {
            event.preventDefault();
            const bad = inputs.find((i) => !/^\d+$/.test(i.input.value.trim()));
            if (bad) {
                notify(this.#notices, `${bad.field.label}: enter a whole number.`, "error");
                bad.input.focus();
                return;
            }
            // Only the changed fields go; the digits are sent as typed, so values past 2^53 stay exact.
            const changed = inputs.filter((i) => i.input.value.trim() !== String(zone.quota[i.field.key]));
            if (changed.length === 0) {
                notify(this.#notices, "No quota was changed.", "info");
                return;
            }
            const body = `{${changed.map((i) => `${JSON.stringify(i.field.key)}:${i.input.value.trim()}`).join(",")}}`;
            const show = (f, v) => (f.bytes ? format.bytes(v) : format.count(v));
            void this.#change({
                title: `Change the quotas of ${zone.zone}?`,
                body: [
                    el("p", {}, "These quotas change; the others keep their values. A quota below the usage refuses new data; nothing is deleted."),
                    el("ul", { class: "changes" }, ...changed.map((i) => el("li", {}, `${i.field.label}: ${show(i.field, zone.quota[i.field.key])} → ${show(i.field, Number(i.input.value.trim()))}`))),
                ],
                confirm: "Change the quotas",
                run: async () => {
                    const now = await call("PUT", `/v1/admin/zones/${encodeURIComponent(zone.zone)}/quota`, { body });
                    return `Quotas of ${zone.zone} now: ${QUOTA_FIELDS.map((f) => `${f.label.toLowerCase()} ${show(f, now[f.key])}`).join(", ")}.`;
                },
            });
        });
        return form;
    }
    #writesForm(zone) {
        const choices = [
            ["open", "Open: anyone may create chains and upload chunks (appends always need the chain's key)"],
            ["accounts", "Accounts: creating chains and uploading chunks need a session of an account of the zone"],
        ];
        return this.#policyForm("writes", "Who may write", choices, zone.settings.writes, (policy) => this.#change({
            title: `Change who may write to ${zone.zone}?`,
            body: [el("p", {}, `Writes: ${zone.settings.writes} → ${policy}.`)],
            confirm: "Change the writes policy",
            run: async () => {
                await call("PUT", `/v1/admin/zones/${encodeURIComponent(zone.zone)}/settings`, { body: { writes: policy } });
                return `Writes to ${zone.zone} are now ${policy}.`;
            },
        }));
    }
    #registrationForm(zone) {
        const choices = [
            ["open", "Open: anyone may create an account (within the rate limits and the account cap)"],
            ["invite", "Invite: a one-time invite code is needed"],
            ["closed", "Closed: nobody; existing accounts keep working"],
        ];
        return this.#policyForm("registration", "Who may register", choices, zone.registration.policy, (policy) => this.#change({
            title: `Change who may register in ${zone.zone}?`,
            body: [el("p", {}, `Registration: ${zone.registration.policy} → ${policy}.`)],
            confirm: "Change the registration policy",
            run: async () => {
                await call("PUT", `/v1/admin/zones/${encodeURIComponent(zone.zone)}/registration`, { body: { policy } });
                return `Registration in ${zone.zone} is now ${policy}.`;
            },
        }));
    }
    #policyForm(name, legend, choices, current, save) {
        const radios = choices.map(([value, label]) => {
            const id = `${name}-${value}`;
            const input = el("input", { type: "radio", name, id, value, checked: value === current });
            return { value, input, row: el("div", { class: "check" }, input, el("label", { for: id }, label)) };
        });
        const form = el("form", { class: "zone-form", novalidate: true }, el("fieldset", {}, el("legend", {}, legend), ...radios.map((r) => r.row)), el("button", { type: "submit", class: "button button-primary" }, `Save…`, el("span", { class: "visually-hidden" }, ` ${legend.toLowerCase()}`)));
        form.addEventListener("submit", (event) => {
            event.preventDefault();
            const chosen = radios.find((r) => r.input.checked)?.value;
            if (!chosen || chosen === current) {
                notify(this.#notices, `${legend}: no change (it is ${current}).`, "info");
                return;
            }
            void save(chosen);
        });
        return form;
    }
    async #change(confirmation) {
        const result = await confirmChange(confirmation);
        if (result === null)
            return;
        notify(this.#notices, result, "ok");
        this.#formsStale = true;
        this.#poller.now();
    }
}
/** A usage cell: "12 / 1,000" over a bar; the text alone says it. */
function usageCell(used, limit, show) {
    return el("td", { class: "usage" }, el("span", { class: "usage-text" }, show(used), el("span", { class: "muted" }, ` / ${show(limit)}`)), bar(used, limit));
}
function zoneFacts(zone) {
    const s = zone.settings;
    const q = s.account_quota;
    const list = (items) => (items.length === 0 ? el("span", { class: "muted" }, "none") : items.join(", "));
    return el("dl", { class: "facts zone-facts" }, fact("Created", format.date(zone.created_at_ms)), fact("Writes", s.writes), fact("Per account", `${format.count(q.max_chains)} chains, ${format.count(q.max_chunks)} chunks, ${format.bytes(q.max_chunk_bytes)} per node`), fact("Registration", zone.registration.policy), fact("Accounts", `${format.count(zone.accounts.accounts)} of ${format.count(zone.registration.max_accounts)}`), fact("Envelope bytes", `${format.bytes(zone.accounts.envelope_bytes)} of ${format.bytes(zone.registration.max_envelope_bytes)}`), fact("Passkeys", s.passkeys ? `${s.passkeys.rp_id} (${s.passkeys.origins.join(", ")})` : el("span", { class: "muted" }, "off")), fact("CORS origins", list(s.cors_origins)), fact("Site hosts", list(s.site_hosts)), fact("Proxies", list(s.proxies.map((p) => `${p.name} → ${p.upstream}`))));
}
