// The accessibility check of the app's browser tests: axe-core through @axe-core/playwright,
// its WCAG 2.x A and AA rules and best practices, on one part of the page or all of it.
// Returns the violations as short, readable lines; a test asserts there are none.
import { AxeBuilder } from "@axe-core/playwright";

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

async function violations(page, selector) {
  const builder = new AxeBuilder({ page }).withTags(TAGS);
  if (selector !== undefined) builder.include(selector);
  return (await builder.analyze()).violations;
}

const lines = (found) => found.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")} — ${v.help}`));

/** Every axe violation inside `selector` on `page`, one line each ("rule (impact): target — help"). */
export async function axeViolations(page, selector) {
  return lines(await violations(page, selector));
}

/** The serious and critical axe violations anywhere on `page` (what a screen must never have). */
export async function seriousViolations(page) {
  return lines((await violations(page)).filter((v) => v.impact === "serious" || v.impact === "critical"));
}
