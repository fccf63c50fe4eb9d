// Markdown cells to HTML that is safe to put in the page.
//
// `make setup` bundles this file with esbuild into vendor/bundles/markdown.js;
// PyScript hands it to Python as `pyscript.js_modules.markdown`. The HTML is
// sanitized with DOMPurify: no scripts, no event handlers, no forms, so a
// collaborator's markdown cannot run code in another person's page (outputs
// that need scripts go to sandboxed frames instead, see client/render.py).
//
// Fenced code is highlighted with Lezer parsers (Python, JavaScript/TypeScript/JSX,
// JSON, HTML, CSS, YAML) or CodeMirror 5 modes (SQL, shell), and @lezer/highlight's
// classHighlighter: `<span class="tok-keyword">` and the like, coloured by
// client/style.css. Only the parser's output is trusted for structure: every
// piece of text is escaped here, and DOMPurify runs over the whole anyway.
// Other languages stay plain (escaped) text.
//
// The CM5 modes run on a few lines of our own (`legacyTokens`) rather than
// @codemirror/language's StreamLanguage, which would pull the whole editor
// core (~220 KB) into this bundle; SQL is the legacy mode for the same reason
// (@codemirror/lang-sql's grammar lives in a module that needs it).
//
// Math is rendered with KaTeX: `$…$` inline, `$$…$$` as a display block
// (also inline within a paragraph). A `$` must not be followed by a space
// and the closing one must not follow a space or precede a digit, so
// "$5 and $10" stays text; `\$` is a dollar sign. KaTeX's fonts and CSS are
// vendored (vendor/katex, from npm `katex`); its HTML goes through DOMPurify
// with the rest. A formula KaTeX cannot parse shows as its source, in red.

import { marked } from "marked";
import DOMPurify from "dompurify";
import { highlightCode, classHighlighter, tags } from "@lezer/highlight";
import { parser as pythonParser } from "@lezer/python";
import { parser as jsParser } from "@lezer/javascript";
import { parser as jsonParser } from "@lezer/json";
import { parser as htmlParser, configureNesting } from "@lezer/html";
import { parser as cssParser } from "@lezer/css";
import { parser as yamlParser } from "@lezer/yaml";
import { StringStream } from "@codemirror/streamparser";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { standardSQL } from "@codemirror/legacy-modes/mode/sql";
import katex from "katex";

// A fence's language (its info string's first word, lower-cased) to a Lezer
// parser, or to a CM5 stream mode ({ mode }).
const LANGUAGES = new Map();
function alias(names, language) {
  for (const name of names.split(" ")) LANGUAGES.set(name, language);
}
alias("python py python3 ipython ipython3 pycon", pythonParser);
alias("javascript js mjs cjs node", jsParser);
alias("jsx", jsParser.configure({ dialect: "jsx" }));
alias("typescript ts mts cts", jsParser.configure({ dialect: "ts" }));
alias("tsx", jsParser.configure({ dialect: "ts jsx" }));
alias("json jsonc json5 ipynb", jsonParser);
alias("html htm xhtml xml svg", htmlParser.configure({
  wrap: configureNesting([{ tag: "script", parser: jsParser }, { tag: "style", parser: cssParser }]),
}));
alias("css", cssParser);
alias("yaml yml", yamlParser);
alias("sql sqlite postgresql psql mysql", { mode: standardSQL });
alias("sh bash shell zsh", { mode: shell });

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Code as HTML: escaped text, in `tok-*` spans when `language` is one we know. */
export function highlight(code, language) {
  const parser = LANGUAGES.get(language);
  if (!parser) return escapeHtml(code);
  let html = "";
  const put = (text, classes) => {
    html += classes ? `<span class="${classes}">${escapeHtml(text)}</span>` : escapeHtml(text);
  };
  const newline = () => { html += "\n"; };
  if (parser.mode) legacyTokens(code, parser.mode, put, newline);
  else highlightCode(code, parser.parse(code), classHighlighter, put, newline);
  return html;
}

// CM5 token names that are not @lezer/highlight tag names (as StreamLanguage maps them).
const LEGACY = {
  "variable": "variableName", "variable-2": "variableName.special", "string-2": "string.special",
  "def": "variableName.definition", "tag": "tagName", "attribute": "attributeName",
  "type": "typeName", "builtin": "variableName.standard", "qualifier": "modifier",
  "error": "invalid", "header": "heading", "property": "propertyName",
};
const legacyClasses = new Map();

/** classHighlighter's classes for a CM5 token ("keyword", "variable-2", "string.special"…). */
function legacyClass(token) {
  if (!legacyClasses.has(token)) {
    const found = [];
    for (const name of token.split(" ")) {
      const [base, ...modifiers] = (LEGACY[name] || name).split(".");
      let tag = tags[base];
      if (!tag || typeof tag === "function") continue;
      for (const modifier of modifiers) if (typeof tags[modifier] === "function") tag = tags[modifier](tag);
      found.push(tag);
    }
    legacyClasses.set(token, found.length ? classHighlighter.style(found) || "" : "");
  }
  return legacyClasses.get(token);
}

/** Run a CM5 stream mode over `code` line by line, reporting tokens like highlightCode. */
function legacyTokens(code, mode, put, newline) {
  const state = mode.startState ? mode.startState(2) : {};
  code.split("\n").forEach((line, index) => {
    if (index) newline();
    const stream = new StringStream(line, 4, 2);
    if (stream.eol() && mode.blankLine) mode.blankLine(state, 2);
    while (!stream.eol()) {
      stream.start = stream.pos;
      const token = mode.token(stream, state);
      if (stream.pos === stream.start) stream.pos++;  // a mode that did not advance: skip a character
      put(line.slice(stream.start, stream.pos), token ? legacyClass(token) : "");
    }
  });
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
      const body = highlight(text, language);
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
