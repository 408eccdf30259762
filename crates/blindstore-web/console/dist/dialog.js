// The one confirmation step every change goes through: a modal dialog that says what will
// happen, may ask for more (a typed node id, a checkbox), runs the change when confirmed and
// stays open with the server's message if it was refused, so the operator can adjust and retry.
import { messageOf } from "./api.js";
import { el, replace } from "./element.js";
/**
 * Shows `confirmation` in the page's dialog. Resolves with the change's result message, or
 * null if the operator cancelled.
 */
export function confirmChange(confirmation) {
    const dialog = document.getElementById("confirm");
    const reason = el("p", { class: "dialog-reason", id: "confirm-reason" });
    const problem = el("p", { class: "notice notice-error", role: "alert", hidden: true });
    const cancel = el("button", { type: "button", class: "button" }, "Cancel");
    const go = el("button", { type: "submit", class: confirmation.danger ? "button button-danger" : "button button-primary", "aria-describedby": "confirm-reason" }, confirmation.confirm);
    const form = el("form", { method: "dialog", class: "dialog-form", novalidate: true }, el("h2", { id: "confirm-title" }, confirmation.title), el("div", { class: "dialog-body" }, ...confirmation.body), confirmation.fields, problem, reason, el("div", { class: "dialog-actions" }, cancel, go));
    replace(dialog, form);
    const check = () => {
        const ready = confirmation.ready?.() ?? true;
        go.disabled = ready !== true;
        reason.textContent = ready === true ? "" : ready;
    };
    form.addEventListener("input", check);
    form.addEventListener("change", check);
    check();
    // The dialog gives the focus back to the element that opened it; a refresh of the view
    // behind may have replaced that one meanwhile, so its new copy is found by its `data-focus`.
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const openerKey = opener?.dataset.focus;
    return new Promise((resolve) => {
        let running = false;
        const finish = (result) => {
            dialog.removeEventListener("cancel", onCancel);
            dialog.close();
            replace(dialog);
            if (opener !== null && !opener.isConnected && openerKey !== undefined) {
                document.querySelector(`[data-focus="${CSS.escape(openerKey)}"]`)?.focus();
            }
            resolve(result);
        };
        const onCancel = (event) => {
            event.preventDefault();
            if (!running)
                finish(null);
        };
        dialog.addEventListener("cancel", onCancel);
        cancel.addEventListener("click", () => {
            if (!running)
                finish(null);
        });
        form.addEventListener("submit", async (event) => {
            event.preventDefault();
            if (running || (confirmation.ready?.() ?? true) !== true)
                return;
            running = true;
            go.disabled = true;
            cancel.disabled = true;
            problem.hidden = true;
            const label = go.textContent;
            go.textContent = "Working…";
            try {
                finish(await confirmation.run());
            }
            catch (error) {
                running = false;
                go.textContent = label;
                cancel.disabled = false;
                problem.textContent = messageOf(error);
                problem.hidden = false;
                check();
            }
        });
        dialog.showModal();
        // The first input if there is one, else Cancel: a stray Enter confirms nothing.
        (form.querySelector("input, select") ?? cancel).focus();
    });
}
