// Markdown cells to HTML that is safe to put in the page.
//
// `make setup` bundles this file with esbuild into vendor/bundles/markdown.js;
// PyScript hands it to Python as `pyscript.js_modules.markdown`. The HTML is
// sanitized with DOMPurify: no scripts, no event handlers, no forms, so a
// collaborator's markdown cannot run code in another person's page (outputs
// that need scripts go to sandboxed frames instead, see client/render.py).

import { marked } from "marked";
import DOMPurify from "dompurify";

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Sanitized HTML for a markdown text (GitHub-flavoured). */
export function renderMarkdown(text) {
  const html = marked.parse(text, { gfm: true, async: false });
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ["form", "style"] });
}
