"""The report in GitHub Markdown, for a repository or a PR comment (rendering only).

:func:`render_markdown` lays out the same :class:`~sweeps.report.info.ReportInfo` as the
HTML page, section by section with the same blocks; images are referenced as relative
paths (``plots/loss_vs_lr.png``) from the sweep directory. All sweep-provided text is
escaped with :func:`md_escape`; error messages go inside ``<pre>`` blocks with
:func:`html.escape`, which GitHub renders as literal text.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

from sweeps.report.blocks import Details, Figure, GoodNews, ItemList, Labelled, Medium, NoFigures, Paragraph, Table
from sweeps.report.info import ReportInfo, plot_dict

__all__ = ["render_markdown", "md_escape"]


def md_escape(text: Any) -> str:
    """Escape text for Markdown (GitHub): HTML-special characters become entities and the
    inline-Markdown punctuation is backslash-escaped, so table cells cannot be split by
    ``|``, no link or image can form (``[`` ``]``), and ``<script>`` shows as text.
    Newlines become spaces, so escaped text never starts a line and block syntax (``#``,
    ``+``, ``1.``) cannot trigger; ``( ) + # !`` stay readable in the raw file."""
    s = "" if text is None else str(text)
    s = html.escape(s, quote=False)
    out = []
    for ch in s:
        if ch in "\\`*_{}[]|~":
            out.append("\\" + ch)
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _h(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def render_markdown(info: ReportInfo, plot_paths: dict[str, Path] | Sequence[Path]) -> str:
    """The report in GitHub Markdown: the head, then ``info.sections`` as the HTML page has them.

    Args:
        info: :func:`sweeps.report.build_report` of the sweep.
        plot_paths: ``{stem: png path}`` (or a list of paths) of the figures drawn.
    """
    page = MarkdownPage(plot_dict(plot_paths), info.out_dir)
    lines = [
        "# Learning-rate range test report",
        "",
        f"Sweep **{md_escape(info.name)}**, ranked by mean minimum smoothed loss, ties by the "
        f"{md_escape(info.rank_by)} learning rate; Keras backend {md_escape(info.backend)}.",
        "",
        f"**{md_escape(info.summary)}**",
        "",
    ]
    if info.banner:
        lines += [f"> ⚠️ {md_escape(info.banner)}", ""]
    lines += [md_escape(info.method_note), ""]
    if info.budget_note:
        lines += [("> ⚠️ " if "Warning" in info.budget_note else "") + md_escape(info.budget_note), ""]
    for sec in info.sections:
        lines += page.section(sec)
    return "\n".join(lines) + "\n"


class MarkdownPage(Medium):
    """The report's blocks in GitHub Markdown (``plot_paths``: the figures drawn, referenced
    relative to ``base``, the sweep directory)."""

    def __init__(self, plot_paths: dict[str, Path], base: Path) -> None:
        self.plot_paths, self.base = plot_paths, base

    def heading(self, title: str) -> list[str]:
        return [f"## {md_escape(title)}", ""]

    def paragraph(self, block: Paragraph) -> list[str]:
        return [md_escape(block.text), ""]

    def good_news(self, block: GoodNews) -> list[str]:
        return [md_escape(block.text), ""]

    def labelled(self, block: Labelled) -> list[str]:
        return [f"- **{md_escape(label)}**: {md_escape(text)}" for label, text in block.items] + [""]

    def details(self, block: Details) -> list[str]:
        """``<pre>`` with :func:`html.escape`: GitHub shows it as literal text."""
        return [f"<details><summary><b>{_h(block.summary)}</b> <code>{_h(block.code)}</code>{_h(block.note)}</summary>",
                "", f"<pre>{_h(block.text)}</pre>", "</details>", ""]

    def item_list(self, block: ItemList) -> list[str]:
        return [f"- {md_escape(n)} ({md_escape(c)}){md_escape(x)}" for n, c, x in block.items] + [""]

    def table(self, block: Table) -> list[str]:
        """A table, and its rest in a collapsed ``<details>``."""
        t = block
        lines = [_md_table(t.header, t.rows), ""]
        if t.rest:
            lines += [f"<details><summary>{_h(t.rest_summary)}</summary>", "", _md_table(t.header, t.rest), "",
                      "</details>", ""]
        return lines

    def figure(self, block: Figure) -> list[str]:
        path = self.plot_paths.get(block.stem)
        if path is None:
            return []
        return [f"![{md_escape(block.stem.replace('_', ' '))}]({_rel(Path(path), self.base)})", "",
                f"*{md_escape(block.caption)}*", ""]

    def no_figures(self, block: NoFigures) -> list[str]:
        return [] if self.plot_paths else [md_escape(block.text), ""]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(md_escape(c) for c in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(out)
