// Markdown cells to HTML that is safe to put in the page.
//
// `make setup` bundles this file with esbuild into vendor/bundles/markdown.js;
// PyScript hands it to Python as `pyscript.js_modules.markdown`. The HTML is
// sanitized with DOMPurify: no scripts, no event handlers, no forms, so a
// collaborator's markdown cannot run code in another person's page (outputs
// that need scripts go to sandboxed frames instead, see client/render.py).
//
// Fenced Python code is highlighted with the editor's own parser (@lezer/python)
// and @lezer/highlight's classHighlighter: `<span class="tok-keyword">` and the
// like, coloured by client/style.css. Other languages stay plain text.

import { marked } from "marked";
import DOMPurify from "dompurify";
import { highlightCode, classHighlighter } from "@lezer/highlight";
import { parser as pythonParser } from "@lezer/python";

const PYTHON = new Set(["python", "py", "python3", "ipython", "ipython3", "pycon"]);

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Python source as HTML: escaped text in `tok-*` spans. */
export function highlightPython(code) {
  let html = "";
  highlightCode(code, pythonParser.parse(code), classHighlighter,
    (text, classes) => {
      html += classes ? `<span class="${classes}">${escapeHtml(text)}</span>` : escapeHtml(text);
    },
    () => { html += "\n"; });
  return html;
}

marked.use({
  renderer: {
    code({ text, lang }) {
      const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
      const body = PYTHON.has(language) ? highlightPython(text) : escapeHtml(text);
      const cls = language ? ` class="language-${escapeHtml(language)}"` : "";
      return `<pre><code${cls}>${body}</code></pre>\n`;
    },
  },
});

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
