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
//
// Math is rendered with KaTeX: `$…$` inline, `$$…$$` as a display block
// (also inline within a paragraph). A `$` must not be followed by a space
// and the closing one must not follow a space or precede a digit, so
// "$5 and $10" stays text; `\$` is a dollar sign. KaTeX's fonts and CSS are
// vendored (vendor/katex, from npm `katex`); its HTML goes through DOMPurify
// with the rest. A formula KaTeX cannot parse shows as its source, in red.

import { marked } from "marked";
import DOMPurify from "dompurify";
import { highlightCode, classHighlighter } from "@lezer/highlight";
import { parser as pythonParser } from "@lezer/python";
import katex from "katex";

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

/** TeX as KaTeX HTML (and MathML, for screen readers); errors are shown, never thrown. */
export function renderMath(tex, displayMode) {
  return katex.renderToString(tex, { displayMode, throwOnError: false, output: "htmlAndMathml" });
}

const mathBlock = {
  name: "mathBlock",
  level: "block",
  start: (src) => src.match(/^ {0,3}\$\$/m)?.index,
  tokenizer(src) {
    const match = /^ {0,3}\$\$([\s\S]+?)\$\$[ \t]*(?:\n+|$)/.exec(src);
    if (match) return { type: "mathBlock", raw: match[0], text: match[1].trim() };
  },
  renderer: (token) => `<div class="math-display">${renderMath(token.text, true)}</div>\n`,
};

const mathInline = {
  name: "mathInline",
  level: "inline",
  start(src) {
    const at = src.search(/(?<!\\)\$/);
    return at >= 0 ? at : undefined;
  },
  tokenizer(src) {
    const display = /^\$\$((?:\\.|[^\\$])+?)\$\$/.exec(src);
    if (display) return { type: "mathInline", raw: display[0], text: display[1].trim(), display: true };
    const match = /^\$(?!\s)((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)/.exec(src);
    if (match) return { type: "mathInline", raw: match[0], text: match[1], display: false };
  },
  renderer: (token) => renderMath(token.text, token.display),
};

marked.use({
  extensions: [mathBlock, mathInline],
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
  return sanitize(html);
}

/** Sanitized KaTeX HTML for a `text/latex` output: `$…$`, `$$…$$`, `\\[…\\]` or bare TeX. */
export function renderLatex(text) {
  const tex = text.trim();
  const wrapped = /^\$\$([\s\S]*)\$\$$/.exec(tex) || /^\\\[([\s\S]*)\\\]$/.exec(tex)
    || /^\$([\s\S]*)\$$/.exec(tex) || /^\\\(([\s\S]*)\\\)$/.exec(tex);
  return sanitize(renderMath(wrapped ? wrapped[1] : tex, true));
}

// KaTeX's MathML (for screen readers; hidden on screen) keeps the TeX source in
// <semantics><annotation>: plain text, which DOMPurify's MathML profile leaves out.
const PURIFY = {
  USE_PROFILES: { html: true, mathMl: true },
  ADD_TAGS: ["semantics", "annotation"],
  ADD_ATTR: ["encoding"],
  FORBID_TAGS: ["form", "style"],
};

function sanitize(html) {
  return DOMPurify.sanitize(html, PURIFY);
}
