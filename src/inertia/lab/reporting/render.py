"""One renderer, three outputs: Markdown, self-contained HTML and terminal text.

Every report (the comparison, the seed-claims suite) is a :class:`~.document.Document`;
these functions are the only code that writes report syntax. The HTML embeds its PNGs as
base64 and has no scripts or external links, so it opens offline, from an e-mail
attachment or a CI artifact; every image carries its text alternative (``alt``) and a
visible description under it.
"""
from __future__ import annotations

import base64
import html as _html
import re
import shutil
import textwrap
from pathlib import Path

from .document import Bullets, Document, Figure, Heading, Paragraph, Table

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`(.+?)`")
_LINK = re.compile(r"\[([^\]]+?)\]\(([^)\s]+?)\)")

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.88em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.r,th.r{text-align:right}img{max-width:100%;border:1px solid #eee;margin:.5em 0}figure{margin:1.2em 0}
figcaption{font-size:.85em;color:#444}.alt{font-size:.8em;color:#555}.verdict{background:#eef6ee;
border-left:4px solid #4a4;padding:.5em 1em}.note{font-size:.88em;color:#555}code{background:#f4f4f4;padding:0 .2em}"""


# ---------------------------------------------------------------------------- inline marks

def _inline_html(text: str) -> str:
    text = _html.escape(text, quote=False)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _CODE.sub(r"<code>\1</code>", text)
    return _LINK.sub(r'<a href="\2">\1</a>', text)


def plain(text: str) -> str:
    """Text without inline marks (the terminal, alt attributes)."""
    text = _BOLD.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    return _LINK.sub(r"\1 (\2)", text)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------- markdown

def markdown(doc: Document) -> str:
    """The document as Markdown (figures link to their PNGs beside the file)."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * max(2, b.level)} {b.text}", ""]
        elif isinstance(b, Paragraph):
            out += [f"> {b.text}" if b.kind == "verdict" else b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            if not b.rows:
                out += ["(no rows)", ""]
                continue
            align = b.align or ["l"] * len(b.columns)
            out.append("| " + " | ".join(_md_cell(c) for c in b.columns) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
            if b.note:
                out += [b.note, ""]
        elif isinstance(b, Figure):
            out += [f"![{_md_cell(plain(b.alt))}]({b.path.name})", "", f"*{b.caption}.* {b.alt}", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------- html

def html(doc: Document) -> str:
    """The document as one self-contained HTML page (images embedded)."""
    h = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_html.escape(doc.title)}</title>"
         f"<style>{CSS}</style></head><body><h1>{_html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            level = max(2, min(6, b.level))
            h.append(f"<h{level}>{_inline_html(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            cls = f" class='{b.kind}'" if b.kind else ""
            h.append(f"<p{cls}>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            h.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            if not b.rows:
                h.append("<p>(no rows)</p>")
                continue
            align = b.align or ["l"] * len(b.columns)
            head = "".join(f"<th class='{a}'>{_inline_html(c)}</th>" for c, a in zip(b.columns, align))
            body = "".join("<tr>" + "".join(f"<td class='{a}'>{_inline_html(c)}</td>" for c, a in zip(row, align))
                           + "</tr>" for row in b.rows)
            h.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            if b.note:
                h.append(f"<p class='note'>{_inline_html(b.note)}</p>")
        elif isinstance(b, Figure):
            data = base64.b64encode(Path(b.path).read_bytes()).decode()
            h.append(f"<figure><img alt='{_html.escape(plain(b.alt), quote=True)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption><strong>{_html.escape(b.caption)}.</strong> "
                     f"<span class='alt'>{_inline_html(b.alt)}</span></figcaption></figure>")
    h.append("</body></html>")
    return "".join(h)


# ---------------------------------------------------------------------------- terminal

def text(doc: Document, width: int | None = None, everything: bool = False) -> str:
    """The document's terminal blocks (``everything=True``: all blocks) as plain text."""
    width = width or max(60, shutil.get_terminal_size((100, 24)).columns)
    out: list[str] = []
    for b in doc.blocks:
        if not (b.terminal or everything):
            continue
        if isinstance(b, Heading):
            t = plain(b.text)
            out += ["", t, ("=" if b.level <= 2 else "-") * len(t)]
        elif isinstance(b, Paragraph):
            out += textwrap.wrap(plain(b.text), width) + [""]
        elif isinstance(b, Bullets):
            for item in b.items:
                out += textwrap.wrap(plain(item), width, initial_indent="- ", subsequent_indent="  ")
            out.append("")
        elif isinstance(b, Table):
            out += table_text(b) + [""]
            if b.note:
                out += textwrap.wrap(plain(b.note), width) + [""]
        elif isinstance(b, Figure):
            out += textwrap.wrap(f"[figure {b.path.name}] {plain(b.caption)}: {plain(b.alt)}", width) + [""]
    return "\n".join(out).strip("\n")


def table_text(t: Table) -> list[str]:
    """A fixed-width table."""
    if not t.rows:
        return ["(no rows)"]
    cols = [plain(c) for c in t.columns]
    rows = [[plain(c) for c in r] for r in t.rows]
    align = t.align or ["l"] * len(cols)
    width = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, width, align)).rstrip()

    return [line(cols), "  ".join("-" * w for w in width)] + [line(r) for r in rows]


def write(doc: Document, out: Path, stem: str = "report") -> list[Path]:
    """Write ``stem.md`` and ``stem.html`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / f"{stem}.md", out / f"{stem}.html"
    md.write_text(markdown(doc), encoding="utf-8")
    page.write_text(html(doc), encoding="utf-8")
    return [md, page]
