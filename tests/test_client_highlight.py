"""Highlighted code: fenced code in rendered markdown, and the editor's languages.

Chromium and a real relay. Markdown cells are pushed over the API and shown
by the real client; the fences' tokens must come out as ``tok-*`` spans,
unknown languages as escaped text, and nothing in a fence may become markup.
The editor's languages (python, markdown, text) are driven through the editor
bundle in the page, as the client's Python drives it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.chromium import context_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import SYNC_TIMEOUT_MS, ClientPage, _event, cell_ids, new_notebook, push
from tests.conftest import RelayProcess, module_relay

pytestmark = pytest.mark.slow


relay = module_relay("client-highlight")


def _markdown_notebook(relay: RelayProcess, *texts: str) -> str:
    """A notebook of one empty code cell and then one markdown cell per text."""
    notebook = new_notebook(relay, "highlight")
    after = cell_ids(relay, notebook)[0]
    for text in texts:
        cell_id = uuid.uuid4().hex
        push(
            relay,
            notebook,
            _event("cellCreated", cell_id=cell_id, cell_type="markdown", after=after, source=text),
        )
        after = cell_id
    return notebook


#: A fence per language: (info string, code, {tok class: a token's text that must carry it}).
FENCES = [
    (
        "js",
        "const greet = (name) => `hi ${name}`;\nreturn 'x'; // done",
        {"tok-keyword": "const", "tok-string": "'x'", "tok-comment": "// done"},
    ),
    (
        "typescript",
        "interface Point { x: number }\nlet p: Point = load('a');",
        {"tok-keyword": "interface", "tok-typeName": "Point", "tok-string": "'a'"},
    ),
    (
        "jsx",
        'const el = <div className="box">{n}</div>;',
        {"tok-keyword": "const", "tok-typeName": "div", "tok-string": '"box"'},
    ),
    (
        "json",
        '{"name": "anode", "n": 3, "ok": true}',
        {
            "tok-propertyName": '"name"',
            "tok-string": '"anode"',
            "tok-number": "3",
            "tok-bool": "true",
        },
    ),
    (
        "sql",
        "SELECT name FROM users WHERE id = 'u1'; -- one",
        {"tok-keyword": "SELECT", "tok-string": "'u1'", "tok-comment": "-- one"},
    ),
    (
        "bash",
        'for f in *.txt; do\n  echo "done"  # note\ndone',
        {"tok-keyword": "for", "tok-string": '"done"', "tok-comment": "# note"},
    ),
    (
        "html",
        '<a href="/x">link</a>\n<script>let s = "y";</script>',
        {"tok-typeName": "a", "tok-string": '"/x"', "tok-keyword": "let"},
    ),  # the script inside is JavaScript
    (
        "css",
        ".box > p { color: red; margin: 0 } /* c */",
        {
            "tok-className": "box",
            "tok-propertyName": "color",
            "tok-number": "0",
            "tok-comment": "/* c */",
        },
    ),
    (
        "yaml",
        "name: anode\nok: 'yes'  # c",
        {"tok-propertyName": "name", "tok-string": "'yes'", "tok-comment": "# c"},
    ),
]


def _fence(info: str, code: str) -> str:
    return f"```{info}\n{code}\n```\n"


def test_fenced_code_is_highlighted_by_language(relay: RelayProcess, context) -> None:
    """Each fenced language's keywords, strings, comments… come out in ``tok-*`` spans, and the
    code reads exactly as written; an unknown language stays plain text."""
    from playwright.sync_api import expect

    text = "\n".join(_fence(info, code) for info, code, _ in FENCES) + _fence(
        "brainfuck", "+[-->++<]>."
    )
    tab = ClientPage.open(context, relay, _markdown_notebook(relay, text))
    rendered = tab.cell(1).locator(".markdown-rendered")
    expect(rendered.locator("pre code")).to_have_count(len(FENCES) + 1, timeout=SYNC_TIMEOUT_MS)
    for info, code, expected in FENCES:
        block = rendered.locator(f"pre code.language-{info}")
        expect(block).to_have_text(code)
        for cls, token in expected.items():
            spans = block.locator(f"span.{cls}")
            assert token in spans.all_inner_texts(), (
                f"{info}: no {cls} {token!r} in {spans.all_inner_texts()}"
            )
    plain = rendered.locator("pre code.language-brainfuck")
    expect(plain).to_have_text("+[-->++<]>.")
    expect(plain.locator("span")).to_have_count(0)
    # Coloured by the stylesheet, not only classed.
    keyword = rendered.locator("code.language-sql span.tok-keyword").first
    assert keyword.evaluate("e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    assert tab.errors == []
    tab.page.close()


#: What a fence tries, to break out of its <pre><code> or to run script; none may work.
_ESCAPES = (
    '</code></pre><img src=x onerror="window.__anode_pwned = 1">'
    "<script>window.__anode_pwned = 2</script>"
)


def test_fenced_code_cannot_inject(relay: RelayProcess, context) -> None:
    """A `<script>` or a closing `</code></pre>` inside a fence, in a known or an unknown language
    or in the info string, shows as text: no element is made, nothing runs. Raw HTML outside a
    fence still goes through DOMPurify."""
    from playwright.sync_api import expect

    infos = [
        "nope",
        "js",
        "html",
        "bash",
        "sql",
        "python",
        "json",
        'js"><img src=x onerror=alert(1)>',
    ]
    text = "\n".join(_fence(info, _ESCAPES) for info in infos)
    text += '\n<img src="data:," onerror="window.__anode_pwned = 3">'
    text += "<script>window.__anode_pwned = 4</script>\n"
    tab = ClientPage.open(context, relay, _markdown_notebook(relay, text))
    rendered = tab.cell(1).locator(".markdown-rendered")
    blocks = rendered.locator("pre code")
    expect(blocks).to_have_count(len(infos), timeout=SYNC_TIMEOUT_MS)
    for index in range(len(infos)):
        expect(blocks.nth(index)).to_have_text(_ESCAPES)
    expect(rendered.locator("pre code *:not(span)")).to_have_count(0)  # text, and tok-* spans only
    expect(rendered.locator("pre")).to_have_count(len(infos))  # no fence closed its block early
    expect(rendered.locator("img")).to_have_count(1)  # the raw one, sanitized:
    expect(rendered.locator("script, [onerror]")).to_have_count(0)
    assert tab.page.evaluate("window.__anode_pwned") is None
    assert tab.errors == []
    tab.page.close()


# The editor bundle, driven as client/editor.py drives it: an editor per language, then
# switched. Returns how the first line's first token and the fence's keyword look.
_EDITOR = """async ([doc, language, next]) => {
  const cm = await import("/vendor/bundles/editor.js");
  const parent = document.createElement("div");
  document.body.append(parent);
  const handlers = { change() {}, key() { return false; }, focus() {}, selection() {} };
  const view = cm.createEditor(parent, doc, handlers, language);
  const look = () => {
    const lines = parent.querySelectorAll(".cm-line");
    const first = lines[0].querySelector("span");
    const spans = [...parent.querySelectorAll(".cm-line span")];
    const keyword = spans.find((s) => s.textContent === "const");
    const style = (e) => e && getComputedStyle(e);
    return {
      spans: parent.querySelectorAll(".cm-line span").length,
      heading: first ? {
        weight: style(first).fontWeight,
        decoration: style(first).textDecorationLine,
        color: style(first).color,
      } : null,
      keyword: keyword ? style(keyword).color : null,
    };
  };
  // CodeMirror parses within a time budget and finishes in the background (a nested
  // fence, a busy machine): look once the highlighting has stopped changing.
  const settled = async () => {
    let last = null, same = 0;
    for (let i = 0; i < 300 && same < 5; i++) {  // the same for 5 looks in a row (0.1 s)
      await new Promise((done) => setTimeout(done, 20));
      const now = JSON.stringify(look());
      same = now === last ? same + 1 : 0;
      last = now;
    }
    return look();
  };
  const before = await settled();
  if (next) cm.setLanguage(view, next);
  const after = await settled();
  const text = cm.text(view);
  cm.destroy(view);
  parent.remove();
  return { before, after, text };
}"""

_DOC = "# Title\n\n```js\nconst x = 1;\n```\n"
_BOLD, _KEYWORD, _COMMENT = (
    "700",
    "rgb(119, 0, 136)",
    "rgb(153, 68, 0)",
)  # CodeMirror's default style


def test_editor_languages(relay: RelayProcess, context) -> None:
    """createEditor(…, "markdown") highlights a heading and the fenced code by its language;
    "python" (the default) reads `# Title` as a comment; "text" highlights nothing; setLanguage
    switches a live editor and keeps its text."""
    tab = ClientPage.open(context, relay)

    def run(language: str | None, next: str | None = None) -> dict:
        result = tab.page.evaluate(_EDITOR, [_DOC, language, next])
        assert result["text"] == _DOC
        return result

    markdown = run("markdown", "python")
    assert markdown["before"]["heading"]["weight"] == _BOLD
    assert "underline" in markdown["before"]["heading"]["decoration"]
    assert markdown["before"]["keyword"] == _KEYWORD  # `const` in the js fence
    assert markdown["after"]["heading"]["color"] == _COMMENT  # now Python: a comment
    assert markdown["after"]["heading"]["weight"] != _BOLD
    assert markdown["after"]["keyword"] is None

    default = run(None, "text")  # no language given: Python, as code cells have always been
    assert default["before"]["heading"]["color"] == _COMMENT
    assert default["after"]["spans"] == 0

    text = run("text", "markdown")
    assert text["before"]["spans"] == 0
    assert text["after"]["heading"]["weight"] == _BOLD
    assert text["after"]["keyword"] == _KEYWORD
    assert tab.errors == []
    tab.page.close()
