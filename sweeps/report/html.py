"""The report as one self-contained HTML page, and a sweep's notebook view (rendering only).

:func:`render_html` lays out a :class:`~sweeps.report.info.ReportInfo` — its head (title,
summary, notes) and then every :class:`~sweeps.report.info.Section` in order, each block by
the same rule — with images inlined as base64 ``data:`` URIs, inline CSS and no external
resource; one fixed inline script (:data:`TABLE_SCRIPT`) sorts and filters the ranking.
:func:`render_notebook` is the short fragment ``SweepResult._repr_html_`` shows.

Every string that comes from a sweep file (names, labels, axis values, errors) is escaped
with :func:`html.escape`: a sweep named ``<script>alert(1)</script>`` is shown as that text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import Any, Sequence

from sweeps.report.blocks import Details, Figure, GoodNews, ItemList, Labelled, Medium, NoFigures, Paragraph, Table
from sweeps.report.info import ReportInfo, plot_dict
from sweeps.report.ranking_table import RANKING_TOP, rest_summary

__all__ = ["render_html", "render_notebook", "TABLE_SCRIPT", "TABLE_SCRIPT_TAG"]


def _h(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1.2rem 1.6rem;color:#1a1a1a;line-height:1.45;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.sub{color:#555;margin:.2rem 0 1rem}.summary{font-weight:600}
.banner{background:#fff4e5;border-left:4px solid #E69F00;padding:.6rem .9rem;margin:.8rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #d0d0d0;padding:.3rem .55rem;text-align:left;vertical-align:top}
td{white-space:nowrap}.tablewrap{overflow-x:auto}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#e8f3fb;font-weight:600}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5rem;font-size:.8rem;margin:.3rem 0}
details summary{cursor:pointer}.ok{color:#009E73}.bad{color:#D55E00}
footer{margin-top:2rem;color:#777;font-size:.8rem}
"""


def _html_table(header: list[str], rows: list[list[str]], num_cols: set[int] = frozenset(), best_first: bool = False,
                table_class: str = "") -> str:
    cls_attr = f' class="{table_class}"' if table_class else ""
    out = [f'<div class="tablewrap"><table{cls_attr}>', "<thead><tr>" + "".join(f"<th>{_h(c)}</th>" for c in header) + "</tr></thead>", "<tbody>"]
    for k, row in enumerate(rows):
        cls = ' class="best"' if best_first and k == 0 else ""
        cells = "".join(f'<td class="num">{_h(c)}</td>' if i in num_cols else f"<td>{_h(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


#: The report's one script (fixed text, no sweep data, no external resource): a filter box
#: above the ranking and sortable columns (click a header; again to reverse). Sorting or
#: filtering gathers the collapsed rows into the first table. Without script the page reads
#: the same, minus the box.
TABLE_SCRIPT = """(function(){
var tables=document.querySelectorAll("table.ranking");if(!tables.length)return;
var main=tables[0],body=main.tBodies[0],rest=document.querySelector("details.ranking-rest");
function gather(){if(!rest)return;for(var t=1;t<tables.length;t++){var b=tables[t].tBodies[0];
while(b.rows.length)body.appendChild(b.rows[0]);}rest.style.display="none";rest=null;}
function key(td){var v=parseFloat(td.textContent);return isNaN(v)?td.textContent.toLowerCase():v;}
function cmp(a,b){var n1=typeof a==="number",n2=typeof b==="number";
if(n1&&n2)return a-b;if(n1)return -1;if(n2)return 1;return a<b?-1:a>b?1:0;}
var box=document.createElement("input");box.type="search";box.id="ranking-filter";
box.placeholder="filter configurations (any text in a row)";box.style.cssText="width:24rem;margin:.4rem 0";
box.addEventListener("input",function(){gather();var q=box.value.toLowerCase();
for(var i=0;i<body.rows.length;i++){var r=body.rows[i];
r.style.display=r.textContent.toLowerCase().indexOf(q)<0?"none":"";}});
main.parentNode.parentNode.insertBefore(box,main.parentNode);
var ths=main.tHead.rows[0].cells;
for(var c=0;c<ths.length;c++){(function(c){var th=ths[c],dir=1;th.style.cursor="pointer";th.title="sort";
th.addEventListener("click",function(){gather();var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){return dir*cmp(key(a.cells[c]),key(b.cells[c]));});dir=-dir;
for(var i=0;i<rows.length;i++)body.appendChild(rows[i]);});})(c);}
})();"""
TABLE_SCRIPT_TAG = f"<script>{TABLE_SCRIPT}</script>"




def render_html(info: ReportInfo, plot_paths: dict[str, Path] | Sequence[Path]) -> str:
    """The report as ONE self-contained HTML page.

    Sections: title and sweep name, summary line (and a banner for partial results), then
    ``info.sections`` in order (ranking, recommendations, per-axis effects, verification and
    recipes, the plots, the lr-scaling fits, failed trials, missing trials), and a footer.

    Args:
        info: :func:`sweeps.report.build_report` of the sweep.
        plot_paths: ``{stem: png path}`` from :func:`sweeps.report.figures.make_plots` (or a
            list of paths); a figure block whose figure is absent is left out.

    Returns:
        the HTML text. All sweep-provided text is escaped with :func:`html.escape`.
    """
    page = HtmlPage(plot_dict(plot_paths))
    parts = _html_head(info)
    for sec in info.sections:
        parts += page.section(sec)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<footer>Generated by lrrt on {_h(stamp)} from trials/*.json. Tables: trials.csv, ranking.csv, "
                 "curves.parquet.</footer></body></html>")
    return "\n".join(parts) + "\n"


def _html_head(info: ReportInfo) -> list[str]:
    """Document head, title, summary line, and the notes on partial results, method and budget."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lrrt report: {_h(info.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Learning-rate range test report</h1>",
        f'<p class="sub">Sweep <strong>{_h(info.name)}</strong> · directory <code>{_h(info.out_dir)}</code> · '
        f"ranked by mean minimum smoothed loss, ties by the {_h(info.rank_by)} learning rate · "
        f"Keras backend {_h(info.backend)}</p>",
        f'<p class="summary">{_h(info.summary)}</p>',
    ]
    if info.banner:
        parts.append(f'<div class="banner">{_h(info.banner)}</div>')
    parts.append(f"<p>{_h(info.method_note)}</p>")
    budget = info.budget_note
    if budget:
        parts.append(f'<div class="banner">{_h(budget)}</div>' if "Warning" in budget else f"<p>{_h(budget)}</p>")
    return parts


class HtmlPage(Medium):
    """The report page's blocks as HTML (``plot_paths``: the figures drawn, ``{stem: png}``)."""

    def __init__(self, plot_paths: dict[str, Path]) -> None:
        self.plot_paths = plot_paths

    def heading(self, title: str) -> list[str]:
        return [f"<h2>{_h(title)}</h2>"]

    def paragraph(self, block: Paragraph) -> list[str]:
        return [f"<p>{_h(block.text)}</p>"]

    def good_news(self, block: GoodNews) -> list[str]:
        return [f'<p class="ok">{_h(block.text)}</p>']

    def labelled(self, block: Labelled) -> list[str]:
        return [f"<p><strong>{_h(label)}</strong>: {_h(text)}</p>" for label, text in block.items]

    def details(self, block: Details) -> list[str]:
        return [f"<details open><summary><strong>{_h(block.summary)}</strong> <code>{_h(block.code)}</code>"
                f"{_h(block.note)}</summary><pre>{_h(block.text)}</pre></details>"]

    def item_list(self, block: ItemList) -> list[str]:
        return ["<ul>" + "".join(f"<li>{_h(n)} <code>{_h(c)}</code>{_h(x)}</li>" for n, c, x in block.items) + "</ul>"]

    def table(self, block: Table) -> list[str]:
        """A table, its collapsed rest, and (for the ranking) the sorting script."""
        t = block
        parts = [_html_table(t.header, t.rows, t.num_cols, best_first=t.best_first, table_class=t.css_class)]
        if t.rest:
            parts.append(f'<details class="{t.css_class}-rest"><summary>{_h(t.rest_summary)}</summary>'
                         + _html_table(t.header, t.rest, t.num_cols, table_class=t.css_class) + "</details>")
        if t.css_class == "ranking":
            parts.append(TABLE_SCRIPT_TAG)
        return parts

    def figure(self, block: Figure) -> list[str]:
        path = self.plot_paths.get(block.stem)
        if path is None:
            return []
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return [f'<figure><img src="data:image/png;base64,{data}" alt="{_h(block.stem.replace("_", " "))}">'
                f"<figcaption>{_h(block.caption)}</figcaption></figure>"]

    def no_figures(self, block: NoFigures) -> list[str]:
        return [] if self.plot_paths else [f"<p>{_h(block.text)}</p>"]


class NotebookView(HtmlPage):
    """A section as the notebook view shows it: its sentences and tables, compact (each table's
    top rows and a line for the rest); no figures, labels, lists or error texts."""

    def __init__(self) -> None:
        super().__init__({})

    def heading(self, title: str) -> list[str]:
        return [f"<p><b>{_h(title)}</b></p>"]

    def table(self, block: Table) -> list[str]:
        t = block
        parts = [_html_table(t.header, t.rows[:RANKING_TOP], t.num_cols, best_first=t.best_first)]
        if t.rest or len(t.rows) > RANKING_TOP:
            parts.append(f"<p>{_h(t.rest_summary or rest_summary(RANKING_TOP, len(t.rows)))}: see report.html.</p>")
        return parts

    def good_news(self, block: GoodNews) -> list[str]:
        return []

    def labelled(self, block: Labelled) -> list[str]:
        return []

    def details(self, block: Details) -> list[str]:
        return []

    def item_list(self, block: ItemList) -> list[str]:
        return []

    def figure(self, block: Figure) -> list[str]:
        return []

    def no_figures(self, block: NoFigures) -> list[str]:
        return []


def render_notebook(info: ReportInfo) -> str:
    """A sweep as a notebook shows it (``SweepResult._repr_html_``): an HTML fragment with the
    summary line, a partial-results note, the Recommendations (after verification: the verified
    rate beside the range test's, and how they differ), the ranking table (its top rows; how
    many more; the unranked configurations apart) and the loss-vs-rate plot as an embedded PNG.
    No page, no CSS: the notebook styles it."""
    parts = [f'<div class="lrrt-sweep"><p><b>{_h(info.name)}</b>: {_h(info.summary)} '
             f"&mdash; <code>{_h(info.out_dir)}</code></p>"]
    if info.banner:
        parts.append(f"<p><i>{_h(info.banner)}</i></p>")
    view = NotebookView()
    for title in ("Recommendations", "Ranking"):
        parts += view.section(info.section(title))
    parts += _notebook_figure(info)
    parts.append("</div>")
    return "\n".join(parts)


def _notebook_figure(info: ReportInfo) -> list[str]:
    """The loss-vs-rate figure as an embedded PNG (``[]`` when no trial is ok)."""
    import io

    from sweeps.report.figures import fig_loss_vs_lr

    fig = fig_loss_vs_lr(info)
    if fig is None:
        return []
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return [f'<img alt="smoothed loss vs learning rate" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">']
