// The accessibility check of the console's browser test: axe-core (a devDependency of this
// package) injected into the page and run on one part of it, its WCAG 2.x A and AA rules and
// best practices. Returns the violations as short, readable lines; the test asserts there are none.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** The axe violations inside `selector` on `page`, one line each ("rule (impact): target"). */
export async function axeViolations(page, selector = "body") {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern (a script
    // tag would be refused, and reported as a violation).
    await page.evaluate(`${axeSource};0`);
  }
  return page.evaluate(async (selector) => {
    const { violations } = await window.axe.run(selector, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    });
    return violations.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")} — ${v.help}`));
  }, selector);
}
