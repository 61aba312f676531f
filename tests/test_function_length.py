"""No function in lrrt_core/ or sweeps/ is longer than 60 lines of code (STYLE.md #15).

Lines of code: the lines of a function's span (its nested functions and classes included)
that are neither blank, nor only a comment, nor part of a docstring. A longer function is
several functions waiting for names.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers taken by module, class and function docstrings."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _code_lines(source: str) -> set[int]:
    """Line numbers holding at least one token that is not a comment or layout."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def long_functions(path: Path, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """``[(qualified name:line, lines of code)]`` of the functions in ``path`` over ``limit``."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    code = _code_lines(source) - _docstring_lines(tree)
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                n = len([i for i in range(start, child.end_lineno + 1) if i in code])
                if n > limit:
                    out.append((f"{prefix}{child.name}:{child.lineno}", n))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def test_the_checker_counts_code_lines_only(tmp_path):
    body = "\n".join(f"    x{i} = {i}  # note" for i in range(MAX_LINES - 1))
    src = f'def f():\n    """Doc.\n\n    more doc\n    """\n\n    # a comment\n{body}\n'
    (tmp_path / "ok.py").write_text(src)
    assert long_functions(tmp_path / "ok.py") == []  # def + 59 lines = 60
    (tmp_path / "long.py").write_text(src + "    return x0\n")
    assert long_functions(tmp_path / "long.py") == [("f:1", 61)]


@pytest.mark.parametrize("package", [
    "lrrt_core",
    "sweeps",
])
def test_no_function_over_60_lines_of_code(package):
    found = {str(p.relative_to(REPO)): long for p in sorted((REPO / package).rglob("*.py"))
             if (long := long_functions(p))}
    assert not found, f"functions over {MAX_LINES} lines of code: {found}"
