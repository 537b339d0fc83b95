"""The document model every report is built from: headings, paragraphs, lists, tables, figures.

A report is data first: :class:`Document` holds a title and a list of blocks, and the
renderers in :mod:`.render` turn the same blocks into Markdown, a self-contained HTML page
and terminal text. So a sentence is written once, and the three outputs cannot disagree.

Text in blocks may use three inline marks, which each renderer understands:
``**bold**``, ```code``` and ``[text](link)``.

Each block says whether it belongs in the terminal summary (``terminal=True``): tables,
verdicts and claims do; explanations and figures stay in the files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union


@dataclass
class Heading:
    text: str
    level: int = 2
    terminal: bool = True


@dataclass
class Paragraph:
    """A paragraph; ``kind`` ``"verdict"`` or ``"note"`` is styled (a box, small print)."""

    text: str
    kind: str = ""
    terminal: bool = False


@dataclass
class Bullets:
    items: list[str]
    terminal: bool = False


@dataclass
class Table:
    """Cells are already formatted text; ``align`` is ``"l"``/``"r"`` per column."""

    columns: list[str]
    rows: list[list[str]]
    align: list[str] | None = None
    note: str = ""
    terminal: bool = True


@dataclass
class Figure:
    """A PNG on disk, its caption, and a text alternative that says what the figure shows."""

    path: Path
    caption: str
    alt: str
    terminal: bool = False


Block = Union[Heading, Paragraph, Bullets, Table, Figure]


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> "Document":
        self.blocks.extend(blocks)
        return self

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]
