"""A report section as typed blocks, and the one way a medium draws them (no rendering here).

:class:`Section` is a title and a list of blocks: :class:`Paragraph`, :class:`GoodNews`,
:class:`Table`, :class:`Figure`, :class:`NoFigures`, :class:`Labelled`, :class:`ItemList`
and :class:`Details`. A medium (the HTML page, the notebook view, the Markdown file)
subclasses :class:`Medium`, one method per block type — a medium missing one cannot be made —
and :meth:`Medium.section` dispatches every block to its method, the one dispatch there is.
Text in blocks is plain and unescaped: each medium escapes it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Union

__all__ = ["Paragraph", "GoodNews", "Table", "Figure", "NoFigures", "Labelled", "ItemList", "Details", "Block",
           "Section", "Medium"]


@dataclasses.dataclass(frozen=True)
class Paragraph:
    """A paragraph of text."""

    text: str


@dataclasses.dataclass(frozen=True)
class GoodNews:
    """A line saying nothing is wrong (no failed trial, none missing)."""

    text: str


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of plain-text cells.

    Attributes:
        header, rows: the cells. num_cols: indices of right-aligned (numeric) columns.
        best_first: highlight the first row (HTML). css_class: the HTML table's class.
        rest, rest_summary: rows shown collapsed after ``rows``, and the line that says so.
    """

    header: list[str]
    rows: list[list[str]]
    num_cols: frozenset[int] = frozenset()
    best_first: bool = False
    css_class: str = ""
    rest: list[list[str]] = dataclasses.field(default_factory=list)
    rest_summary: str = ""


@dataclasses.dataclass(frozen=True)
class Figure:
    """The figure ``plots/<stem>.png`` with its caption; drawn when that figure exists."""

    stem: str
    caption: str


@dataclasses.dataclass(frozen=True)
class NoFigures:
    """A line shown only when no figure exists at all."""

    text: str


@dataclasses.dataclass(frozen=True)
class Labelled:
    """One line per ``(label, text)`` item."""

    items: list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class ItemList:
    """A bulleted list of ``(name, code, note)`` items (a planned trial, its id, why it is missing)."""

    items: list[tuple[str, str, str]]


@dataclasses.dataclass(frozen=True)
class Details:
    """A collapsible error text: ``summary`` (a trial's name), ``code`` (its id), ``note``, ``text``."""

    summary: str
    code: str
    note: str
    text: str


Block = Union[Paragraph, GoodNews, Table, Figure, NoFigures, Labelled, ItemList, Details]


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section as data; every medium lays out every section by the same blocks."""

    title: str
    blocks: list[Block]


#: block type -> the :class:`Medium` method that draws it.
_DRAW = {Paragraph: "paragraph", GoodNews: "good_news", Table: "table", Figure: "figure", NoFigures: "no_figures",
         Labelled: "labelled", ItemList: "item_list", Details: "details"}


class Medium(abc.ABC):
    """How one medium draws each kind of block, as lines of its text."""

    def section(self, sec: Section) -> list[str]:
        """The section's heading, then each block drawn by this medium's method for its type."""
        lines = self.heading(sec.title)
        for block in sec.blocks:
            lines += getattr(self, _DRAW[type(block)])(block)
        return lines

    @abc.abstractmethod
    def heading(self, title: str) -> list[str]: ...

    @abc.abstractmethod
    def paragraph(self, block: Paragraph) -> list[str]: ...

    @abc.abstractmethod
    def good_news(self, block: GoodNews) -> list[str]: ...

    @abc.abstractmethod
    def table(self, block: Table) -> list[str]: ...

    @abc.abstractmethod
    def figure(self, block: Figure) -> list[str]: ...

    @abc.abstractmethod
    def no_figures(self, block: NoFigures) -> list[str]: ...

    @abc.abstractmethod
    def labelled(self, block: Labelled) -> list[str]: ...

    @abc.abstractmethod
    def item_list(self, block: ItemList) -> list[str]: ...

    @abc.abstractmethod
    def details(self, block: Details) -> list[str]: ...
