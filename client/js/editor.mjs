// The thinnest glue between the client's Python and CodeMirror 6.
//
// `make setup` bundles this file with esbuild into vendor/bundles/editor.js
// (served by the relay at /vendor/bundles/editor.js); PyScript hands it to
// Python as `pyscript.js_modules.editor`. Everything a notebook decides lives
// in Python (client/editor.py): this file only builds an EditorView and turns
// its changes into JSON strings, positions in UTF-16 units as CodeMirror
// counts them. Python converts to code points at its own boundary.

import {
  EditorView, keymap, drawSelection, highlightActiveLine, Decoration, WidgetType,
} from "@codemirror/view";
import {
  EditorState, Annotation, Compartment, Transaction, Prec, StateEffect, StateField,
} from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching, indentOnInput, syntaxHighlighting, defaultHighlightStyle, StreamLanguage,
} from "@codemirror/language";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { python, pythonLanguage } from "@codemirror/lang-python";
import { markdown, markdownLanguage } from "@codemirror/lang-markdown";
import {
  javascriptLanguage, jsxLanguage, typescriptLanguage, tsxLanguage,
} from "@codemirror/lang-javascript";
import { jsonLanguage } from "@codemirror/lang-json";
import { htmlLanguage } from "@codemirror/lang-html";
import { cssLanguage } from "@codemirror/lang-css";
import { yamlLanguage } from "@codemirror/lang-yaml";
import { StandardSQL } from "@codemirror/lang-sql";
import { shell } from "@codemirror/legacy-modes/mode/shell";

// Marks a transaction that came from the log, so it is not reported back.
const remote = Annotation.define();

// Whether a person may type here (a viewer may not): switched by setEditable.
const editing = new Compartment();
const editingExtensions = (on) => [EditorView.editable.of(on), EditorState.readOnly.of(!on)];

// What the text is: "python" (code cells), "markdown" or "text" (raw cells,
// no highlighting); switched by setLanguage when a cell changes type.
const language = new Compartment();

// Fenced code in markdown: the same languages, by the same names, as the
// rendered cells' highlighting (client/js/markdown.mjs).
const FENCES = new Map();
function fence(names, lang) {
  for (const name of names.split(" ")) FENCES.set(name, lang);
}
fence("python py python3 ipython ipython3 pycon", pythonLanguage);
fence("javascript js mjs cjs node", javascriptLanguage);
fence("jsx", jsxLanguage);
fence("typescript ts mts cts", typescriptLanguage);
fence("tsx", tsxLanguage);
fence("json jsonc json5 ipynb", jsonLanguage);
fence("html htm xhtml xml svg", htmlLanguage);
fence("css", cssLanguage);
fence("yaml yml", yamlLanguage);
fence("sql sqlite postgresql psql mysql", StandardSQL.language);
fence("sh bash shell zsh", StreamLanguage.define(shell));
fence("markdown md", markdownLanguage);

const codeLanguages = (info) => FENCES.get(info.trim().split(/\s+/)[0].toLowerCase()) || null;

function languageExtensions(name) {
  if (name === "markdown") return markdown({ base: markdownLanguage, codeLanguages });
  if (name === "text") return [];
  return python();
}

// The keys a notebook handles itself; Python answers whether it did.
const NOTEBOOK_KEYS = [
  ["Shift-Enter", "run-advance"],
  ["Mod-Enter", "run"],
  ["Alt-Enter", "run-insert"],
  ["Escape", "command-mode"],
];

/**
 * An editor in `parent`, for `lang` "python" (the default), "markdown" or "text".
 * handlers.change(json): {"changes": [[fromA, toA, inserted], ...], "sel": [anchor, head]}
 * handlers.key(name) -> bool, handlers.focus(bool), handlers.selection(json [anchor, head])
 */
export function createEditor(parent, doc, handlers, lang = "python") {
  const notebookKeys = NOTEBOOK_KEYS.map(([key, name]) => ({
    key, run: () => Boolean(handlers.key(name)),
  }));
  // Up on the first line and Down on the last move to the neighbouring cell.
  notebookKeys.push(
    { key: "ArrowUp", run: (view) => atEdge(view, -1) && Boolean(handlers.key("up")) },
    { key: "ArrowDown", run: (view) => atEdge(view, 1) && Boolean(handlers.key("down")) },
  );
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        Prec.highest(keymap.of(notebookKeys)),
        history(),
        drawSelection(),
        highlightActiveLine(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        language.of(languageExtensions(lang)),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.lineWrapping,
        remoteCursors,
        editing.of(editingExtensions(true)),
        EditorView.updateListener.of((update) => {
          if (update.focusChanged) handlers.focus(update.view.hasFocus);
          if (!update.docChanged) {
            if (update.selectionSet) {
              const sel = update.state.selection.main;
              handlers.selection(JSON.stringify([sel.anchor, sel.head]));
            }
            return;
          }
          if (update.transactions.every((tr) => tr.annotation(remote))) return;
          const changes = [];
          update.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
            changes.push([fromA, toA, inserted.toString()]);
          });
          const sel = update.state.selection.main;
          handlers.change(JSON.stringify({ changes, sel: [sel.anchor, sel.head] }));
        }),
      ],
    }),
  });
  return view;
}

// Other people's cursors and selections: decorations that follow local edits
// until the next presence update replaces them.
const setCursors = StateEffect.define();

class Caret extends WidgetType {
  constructor(name, color) { super(); this.name = name; this.color = color; }
  eq(other) { return other.name === this.name && other.color === this.color; }
  toDOM() {
    // The name is drawn by CSS (::after from data-name), so it never becomes
    // part of the text a reader, a copy or a test sees.
    const caret = document.createElement("span");
    caret.className = "cm-remote-caret";
    caret.style.setProperty("--person", this.color);
    caret.dataset.name = this.name;
    return caret;
  }
  ignoreEvent() { return true; }
}

const remoteCursors = StateField.define({
  create: () => Decoration.none,
  update(cursors, tr) {
    cursors = cursors.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setCursors)) continue;
      const length = tr.state.doc.length;
      const ranges = [];
      for (const { name, color, tint, anchor, head } of effect.value) {
        const a = Math.min(Math.max(anchor, 0), length);
        const h = Math.min(Math.max(head, 0), length);
        if (a !== h) {
          ranges.push(Decoration.mark({
            class: "cm-remote-selection", attributes: { style: `background-color: ${tint}` },
          }).range(Math.min(a, h), Math.max(a, h)));
        }
        ranges.push(Decoration.widget({ widget: new Caret(name, color), side: 1 }).range(h));
      }
      cursors = Decoration.set(ranges, true);
    }
    return cursors;
  },
  provide: (field) => EditorView.decorations.from(field),
});

/** Show others' cursors: JSON [{"name", "color", "tint", "anchor", "head"}], UTF-16 offsets. */
export function setRemoteCursors(view, json) {
  view.dispatch({ effects: setCursors.of(JSON.parse(json)) });
}

function atEdge(view, direction) {
  const { main } = view.state.selection;
  if (!main.empty) return false;
  const line = view.state.doc.lineAt(main.head);
  return direction < 0 ? line.number === 1 : line.number === view.state.doc.lines;
}

/** Apply a change from the log: {"changes": [[from, to, insert], ...], "sel": [a, h] | null}. */
export function applyRemote(view, json) {
  const { changes, sel } = JSON.parse(json);
  const spec = {
    changes: changes.map(([from, to, insert]) => ({ from, to, insert })),
    annotations: [remote.of(true), Transaction.addToHistory.of(false)],
  };
  if (sel) spec.selection = { anchor: sel[0], head: sel[1] };
  view.dispatch(spec);
}

/** Replace the whole text (after a reset); keeps the cursor as near as it can. */
export function setText(view, text) {
  const head = Math.min(view.state.selection.main.head, text.length);
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    selection: { anchor: head },
    annotations: [remote.of(true), Transaction.addToHistory.of(false)],
  });
}

/** JSON [anchor, head] of the main selection, in UTF-16 units. */
export function selection(view) {
  const { main } = view.state.selection;
  return JSON.stringify([main.anchor, main.head]);
}

export function text(view) {
  return view.state.doc.toString();
}

/** The text of the editor that `element` belongs to (for tests and debugging), or null. */
export function textOf(element) {
  const view = EditorView.findFromDOM(element);
  return view ? view.state.doc.toString() : null;
}

/** Focus the editor with the cursor at "start", "end", or where it was. */
export function focus(view, where) {
  if (where === "start") view.dispatch({ selection: { anchor: 0 } });
  if (where === "end") view.dispatch({ selection: { anchor: view.state.doc.length } });
  view.focus();
}

/** Let a person type in the editor, or not (its text still follows the log). */
export function setEditable(view, on) {
  view.dispatch({ effects: editing.reconfigure(editingExtensions(Boolean(on))) });
}

/** Highlight (and indent, continue lists…) as "python", "markdown" or "text". */
export function setLanguage(view, lang) {
  view.dispatch({ effects: language.reconfigure(languageExtensions(lang)) });
}

export function blur(view) {
  view.contentDOM.blur();
}

export function destroy(view) {
  view.destroy();
}
