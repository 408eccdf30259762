// Building the page out of DOM calls: the console never assigns HTML strings, so text from the
// server (names, error messages, zone ids) is always text, and nothing needs an inline style.

export type Child = Node | string | number | null | undefined | false;
type Attribute = string | number | boolean | null | undefined | ((event: Event) => void);
export type Attributes = Record<string, Attribute>;

/**
 * An HTML element: `class` sets the class list, `on…` functions become listeners, `true`
 * makes an empty attribute, and `false`, null and undefined leave the attribute out.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  apply(element, attributes);
  append(element, children);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, with attributes as `el` takes them. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  apply(element, attributes);
  append(element, children);
  return element;
}

/** Replaces the children of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/**
 * Runs `render` (which rebuilds part of `root`) without losing the keyboard focus: the element
 * that had it, if it carries `data-focus`, is looked up by that key afterwards and focused
 * again. Views refresh every second or two; a refresh must not throw a keyboard user out.
 */
export function keepingFocus(root: Element, render: () => void): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && root.contains(active) ? active.dataset.focus : undefined;
  render();
  if (key !== undefined && !root.contains(active)) {
    const again = root.querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`);
    again?.focus();
  }
}

/** A usage bar: a decorative track (hidden from assistive technology) filled to `used / limit`. */
export function bar(used: number, limit: number | null | undefined): HTMLElement {
  const share = limit && limit > 0 ? Math.min(1, used / limit) : 0;
  const fill = el("span", { class: "bar-fill" });
  fill.style.width = `${(share * 100).toFixed(2)}%`;
  if (used > 0 && share < 0.005) fill.style.minWidth = "2px";
  const level = share >= 0.9 ? "bar-high" : share >= 0.7 ? "bar-mid" : "";
  return el("span", { class: `bar ${level}`, "aria-hidden": "true" }, fill);
}

/** A status pill: `text` says it all, the colour only repeats it. */
export function pill(text: string, kind: "ok" | "bad" | "warn" | "info" | "plain" = "plain"): HTMLElement {
  return el("span", { class: `pill pill-${kind}` }, text);
}

/** One name and value of a description list (`<dl class="facts">`). */
export function fact(name: string, value: string | Node): HTMLElement {
  return el("div", { class: "fact" }, el("dt", {}, name), el("dd", {}, value));
}

/** Text only screen readers read. */
export function hiddenText(text: string): HTMLElement {
  return el("span", { class: "visually-hidden" }, text);
}

function apply(element: Element, attributes: Attributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(parent: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}
