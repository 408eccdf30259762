// The credentials view: replacing the cluster's admin token or its metrics token. The new
// token is shown once (the cluster keeps only its hash); after an admin rotation this tab signs
// in with the new token, since every node and gateway refuses the old one.
import { call, session } from "./api.js";
import { confirmChange } from "./dialog.js";
import { el, replace } from "./element.js";
import { needsAdmin, noticeArea, notify, viewHeading } from "./view.js";
export class CredentialsView {
    id = "credentials";
    title = "Credentials";
    #notices = noticeArea();
    #shown = el("div");
    show(root, context) {
        if (context.access === "metrics") {
            replace(root, viewHeading("Credentials"), needsAdmin("Rotating credentials"));
            return;
        }
        replace(this.#shown);
        replace(root, viewHeading("Credentials"), this.#notices, this.#shown, el("div", { class: "cards" }, card("admin", "Admin token", "Every admin call, on every node and gateway: this console, the CLI, backups. Rotating makes a new random token; every node and gateway then refuses the old one (and any node's own --admin-token).", () => void this.#rotate("admin")), card("metrics", "Metrics token", "Reads /v1/metrics and nothing else: for Prometheus and other scrapers. Rotating makes a new random token and the old one is refused; the admin token keeps working.", () => void this.#rotate("metrics"))));
    }
    hide() {
        // The token shown once goes with the view.
        replace(this.#shown);
    }
    async #rotate(credential) {
        const admin = credential === "admin";
        const result = await confirmChange({
            title: admin ? "Rotate the admin token?" : "Rotate the metrics token?",
            body: admin
                ? [
                    el("p", {}, "Every node and gateway will refuse the old admin token; you will be signed in with the new one."),
                    el("p", {}, "Scripts, backups and other consoles that use the old token stop working until they are given the new one. The new token is shown once."),
                ]
                : [el("p", {}, "Every node and gateway will refuse the old metrics token: scrapers need the new one, which is shown once.")],
            confirm: admin ? "Rotate the admin token" : "Rotate the metrics token",
            danger: admin,
            run: async () => {
                const rotated = await call("POST", "/v1/admin/cluster/credentials/rotate", { body: { credential } });
                const token = admin ? rotated.admin_token : rotated.metrics_token;
                if (!token)
                    throw new Error(`the answer carries no new ${credential} token`);
                if (admin)
                    session.set(token, "admin");
                this.#showOnce(credential, token);
                return admin
                    ? "The admin token was replaced. This tab now uses the new one."
                    : "The metrics token was replaced. Give the new one to your scrapers.";
            },
        });
        if (result === null)
            return;
        notify(this.#notices, result, "ok");
        // After the dialog gave the focus back to the button that opened it.
        const shown = this.#shown.querySelector("input");
        shown?.focus();
        shown?.select();
    }
    #showOnce(credential, token) {
        const id = "new-token";
        const input = el("input", { id, type: "text", readonly: true, value: token, class: "token-output", spellcheck: "false", autocomplete: "off" });
        const copied = el("span", { class: "copy-status", role: "status" });
        const copy = el("button", { type: "button", class: "button button-primary" }, "Copy");
        copy.addEventListener("click", async () => {
            try {
                await navigator.clipboard.writeText(token);
                copied.textContent = "Copied.";
            }
            catch {
                input.select();
                copied.textContent = "The browser did not allow copying: the token is selected, copy it with the keyboard.";
            }
        });
        const done = el("button", { type: "button", class: "button" }, "Hide the token");
        done.addEventListener("click", () => replace(this.#shown));
        replace(this.#shown, el("section", { class: "panel new-token", "aria-labelledby": "new-token-title" }, el("h3", { id: "new-token-title" }, credential === "admin" ? "New admin token" : "New metrics token"), el("p", { class: "warning-text" }, el("strong", {}, "Shown once. "), "Copy it now and keep it somewhere safe: the cluster keeps only its hash, and this page forgets it when you leave this view."), el("label", { for: id, class: "field-label" }, credential === "admin" ? "Admin token" : "Metrics token"), el("div", { class: "token-row" }, input, copy, done), copied));
    }
}
function card(credential, title, text, rotate) {
    return el("section", { class: "panel card", "aria-labelledby": `${credential}-card-title` }, el("h3", { id: `${credential}-card-title` }, title), el("p", {}, text), el("button", { type: "button", class: credential === "admin" ? "button button-danger" : "button button-primary", onclick: rotate }, `Rotate the ${title.toLowerCase()}…`));
}
