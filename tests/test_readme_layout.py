"""README stays what a user reads first (issue 21): at most 300 lines, the two commands as its
first two code blocks, and every page moved to docs/ reachable by a link that resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_at_most_300_lines():
    assert len(README.splitlines()) <= 300


def test_the_two_commands_come_first():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    assert blocks[0].strip() == ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                                 ".venv/bin/lrrt sweep sweeps/configs/quickstart.yaml --out runs/quickstart")
    assert blocks[1].strip() == ('python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && '
                                 ".venv/bin/python -m pytest")
    assert README.index(blocks[1]) < README.index("## What it does")


def test_every_docs_page_is_linked_from_readme_and_every_link_resolves():
    links = re.findall(r"\]\((docs/[^)#\s]+)(#[^)\s]+)?\)", README)
    linked = {path for path, _ in links}
    assert {p for p in linked if p.endswith(".md")} == {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    for path, anchor in links:
        assert (ROOT / path).is_file(), path  # a page or a screenshot (docs/*.png)
        if not path.endswith(".md"):
            continue
        text = (ROOT / path).read_text(encoding="utf-8")
        if anchor:  # GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes
            anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                       for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
            assert anchor[1:] in anchors, (path, anchor)
