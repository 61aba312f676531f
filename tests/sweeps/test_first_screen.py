"""What users read first (issue 21), on sweeps with known answers (no Ray, no TensorFlow):

* after verification the report's first section, ``recipes.json``, ``SweepResult.recommendations``,
  ``lrrt report``'s printout and the notebook view lead with the verified rate, beside the
  range test's, and say how they differ;
* configurations without a rank are listed apart, never ranked;
* every figure's drawn extents lie inside its canvas; a one-batch-size sweep has no lr-scaling
  figure; loss-change panels are scaled by the descent, not by spikes; the verification
  figure's markers do not overlap;
* in headless Chromium at 1400x900, the verified rate is on the first screen (screenshots kept
  next to each report for a human to look at).
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from lrrt_core.curve import Curve
from lrrt_core.plot import fmt_lr
from sweeps import report
from sweeps.api import load
from sweeps.cli import main
from sweeps.reduce import reduce_dir
from tests.conftest import missing_tool
from tests.sweeps import synthetic as S
from tests.sweeps.test_report import CHROMIUM, _chromium
from tests.sweeps.test_verification import _entries, _write_verification

#: the verified answer built into :func:`verified_dir`: per configuration, the candidate factor
#: that trains best and its held-out loss there (every other candidate: +0.5).
BEST = {"sgd-bs32": (3.0, 0.1), "adam-bs128": (1.0, 0.2), "adam-bs32": (1 / 3, 0.3), "sgd-bs128": (1.0, 0.4),
        "sgd-bs512": (1.0, 0.5), "adam-bs512": (1.0, 0.6)}
VERIFIED_ORDER = list(BEST)  # by held-out loss
#: the range test's ranking of the standard sweep (tests/sweeps/test_report.py pins the first two).
RANGE_ORDER = ["adam-bs32", "sgd-bs128", "adam-bs128", "sgd-bs32", "sgd-bs512", "adam-bs512"]


def write_verified(d):
    """The standard sweep, verified: sgd's best is sgd-bs32 at 3x its recommendation (range-test
    rank 4; the range test's pick for sgd was sgd-bs128), adam's best is adam-bs128 at 1x."""
    S.standard_sweep(d, name="verified demo")
    entries = _entries(reduce_dir(d))
    results = {}
    for e in entries:
        factor, loss = BEST[e["config"]]
        p = e["params"]
        v = loss + (0.0 if np.isclose(p["factor"], factor) else 0.5) + (0.01 if p["seed"] else -0.01)
        results[(e["config"], p["seed"], p["factor"])] = (v, 1 - v)
    _write_verification(d, entries, results)
    report.rebuild(d)
    return d


@pytest.fixture(scope="module")
def verified_dir(tmp_path_factory):
    return write_verified(tmp_path_factory.mktemp("verified"))


def write_one_batch_size(d):
    """sgd and adam at batch size 32 only, two seeds: README's folder and notebook examples' shape."""
    entries, records = [], []
    for opt, offset, scale in (("sgd", 0.3, 10.0), ("adam", 0.1, 1.0)):
        for seed in (0, 1):
            e = S.trial_entry(opt, 32, seed)
            entries.append(e)
            records.append(S.ok_record(e, offset + S.SEED_OFFSET[seed], scale * S.SEED_SCALE[seed]))
    S.write_sweep(d, "one batch size", entries, records)
    report.rebuild(d)
    return d


@pytest.fixture(scope="module")
def one_bs_dir(tmp_path_factory):
    return write_one_batch_size(tmp_path_factory.mktemp("onebs"))


def _suggested(red, config):
    return float(red.ranking.set_index("config").loc[config, "suggested_lr_gmean"])


# --------------------------------------------------------------------------- the verified answer first


def test_recommendations_carry_the_verified_rate_beside_the_range_tests(verified_dir):
    result = load(verified_dir)
    red = result.reduction
    assert list(red.ranking.sort_values("rank")["config"]) == RANGE_ORDER
    sgd, adam = result.recommendations["sgd"], result.recommendations["adam"]
    assert (sgd.config, sgd.verified_config) == ("sgd-bs128", "sgd-bs32")  # the range test's pick, training's
    assert sgd.verified_lr == pytest.approx(3 * _suggested(red, "sgd-bs32"))
    assert sgd.verified_range_lr == pytest.approx(_suggested(red, "sgd-bs32"))
    assert sgd.suggested_lr == pytest.approx(_suggested(red, "sgd-bs128"))
    assert (sgd.verified_rank, sgd.n_verified, sgd.verified_range_rank) == (1, 6, 4)
    assert sgd.lr == sgd.verified_lr and sgd.lr_source == "verified" and sgd.lr_change == pytest.approx(3.0)
    assert sgd.verified_metric == pytest.approx(0.1)
    assert (adam.config, adam.verified_config, adam.verified_rank) == ("adam-bs32", "adam-bs128", 2)
    assert adam.lr == pytest.approx(_suggested(red, "adam-bs128")) and adam.lr_change == pytest.approx(1.0)


def test_recipes_json_is_in_verified_order_with_both_ranks(verified_dir):
    recipes = json.loads((verified_dir / "recipes.json").read_text())["recipes"]
    assert [r["config"] for r in recipes] == VERIFIED_ORDER
    assert [r["verified_rank"] for r in recipes] == [1, 2, 3, 4, 5, 6]
    assert [r["rank"] for r in recipes] == [RANGE_ORDER.index(c) + 1 for c in VERIFIED_ORDER]  # 4, 3, 1, 2, 5, 6
    assert recipes[0]["lr_source"] == "verified"


def test_the_reports_first_section_leads_with_the_verified_rate(verified_dir):
    red = reduce_dir(verified_dir)
    page = (verified_dir / "report.html").read_text()
    assert re.findall(r"<h2>([^<]*)</h2>", page)[:2] == ["Recommendations", "Ranking"]
    first = page.split("<h2>Recommendations</h2>")[1].split("<h2>")[0]
    lead = "It differs from the range test's suggestion for 1 of 2 optimizers (sgd 3x higher)"
    assert lead in html.unescape(first)
    assert "the best configuration changed for adam (adam-bs32 -> adam-bs128), sgd (sgd-bs128 -> sgd-bs32)" in \
        html.unescape(first)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", first.split('<table class="recommendations">')[1], re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]
    assert cells[0][:4] == ["optimizer", "train at (verified lr)", "configuration", "verified rank"]
    verified_lr = 3 * _suggested(red, "sgd-bs32")
    assert cells[1] == ["sgd", fmt_lr(verified_lr), "sgd-bs32", "1 of 6", fmt_lr(_suggested(red, "sgd-bs32")),
                        "4 of 6", "3x higher"]
    assert cells[2][:4] == ["adam", fmt_lr(_suggested(red, "adam-bs128")), "adam-bs128", "2 of 6"]
    assert cells[2][-1] == "the same"
    md = (verified_dir / "report.md").read_text()
    assert md.index("## Recommendations") < md.index("## Ranking")
    assert f"| sgd | {fmt_lr(verified_lr)} | sgd-bs32 | 1 of 6 |" in md


def test_notebook_view_and_cli_printout_lead_with_the_verified_rate(verified_dir, capsys):
    red = reduce_dir(verified_dir)
    verified_lr = fmt_lr(3 * _suggested(red, "sgd-bs32"))
    frag = load(verified_dir)._repr_html_()
    ranking_at = frag.index("<p><b>Ranking</b></p>")
    assert frag.index("<p><b>Recommendations</b></p>") < frag.index(verified_lr) < ranking_at
    assert frag.index("<td>3x higher</td>") < ranking_at
    assert main(["report", str(verified_dir)]) == 0
    out = capsys.readouterr().out
    assert out.index("verified by short training (held-out val_loss)") < out.index("range-test ranking")
    table = out.split("verified by short training")[1].splitlines()
    header, first = table[1].split(), table[2].split()
    assert header[:2] == ["verified", "rank"]
    assert first[:2] == ["1", "sgd-bs32"] and "3x" in first and "higher" in first
    assert first[first.index("higher") + 1] == "4"  # its range-test rank


# --------------------------------------------------------------------------- configurations without a rank


def test_configurations_without_a_finished_trial_are_listed_apart_never_ranked(tmp_path, capsys):
    """Both seeds of adam-bs512 missing: its rank is empty, and every renderer lists it apart
    (the heat map draws it grey, unstarred)."""
    S.standard_sweep(tmp_path, name="partial", skip={"adam-bs512-s0", "adam-bs512-s1"})
    red = reduce_dir(tmp_path)
    assert red.ranking.set_index("config")["rank"].isna().to_dict() == {c: c == "adam-bs512" for c in RANGE_ORDER}
    info = report.build_report(red)
    assert report.fig_min_loss_heatmap(info) is not None
    blocks = info.section("Ranking").blocks
    ranked, note, unranked = blocks[0], blocks[1].text, blocks[2]
    assert [row[1] for row in ranked.rows] == RANGE_ORDER[:5]
    assert note.startswith("Not ranked (1): configurations with no finished trial")
    assert [row[:2] for row in unranked.rows] == [["", "adam-bs512"]]
    page = report.render_html(info, {})
    assert "adam-bs512" not in page.split("Not ranked (1)")[0].split("<h2>Ranking</h2>")[1]
    assert "Not ranked (1)" in report.render_markdown(info, {})
    assert "Not ranked (1)" in report.render_notebook(info)
    from sweeps.cli import _print_ranking
    from sweeps.recipes import recipes

    _print_ranking(red)
    out = capsys.readouterr().out
    assert "not ranked (no finished trial): adam-bs512" in out
    assert not re.search(r"^\s*\d+\s+adam-bs512", out, re.M)
    assert "adam-bs512" not in [r["config"] for r in recipes(red.ranking, red.rank_by)]


# --------------------------------------------------------------------------- figures


def _drawn_outside(fig) -> list[str]:
    """What matplotlib draws outside the canvas: the figure's tight box (every drawn artist) and,
    to name the culprit, each title, axis label and legend text by its window extent."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    width, height = fig.get_size_inches()
    tight = fig.get_tightbbox(r)  # inches
    bad = []
    if tight.x0 < -0.02 or tight.y0 < -0.02 or tight.x1 > width + 0.02 or tight.y1 > height + 0.02:
        bad.append(f"drawn extent {np.round(tight.extents, 2)} beyond the {width:.2f} x {height:.2f} in canvas")
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        if ax.get_visible():
            texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]:
        texts += list(leg.get_texts())
    box = fig.bbox
    for t in texts:
        if t.get_visible() and t.get_text().strip():
            e = t.get_window_extent(r)
            if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
                bad.append(f"{t.get_text()[:60]!r} at {np.round(e.extents)} (canvas {np.round(box.extents)})")
    return bad


def _every_figure(d):
    info = report.build_report(reduce_dir(d))
    return {stem: fig for stem, make in report.FIGURES.items() if (fig := make(info)) is not None}


def _long_labels(d):
    """Two optimizers x two batch sizes x an axis whose values are long strings (a model's
    description as users write them): every label of the heat map's rows is ~60 characters."""
    entries, records = [], []
    for opt in ("sgd", "adamw_with_decoupled_weight_decay"):
        for bs in (32, 64):
            for arch in ("resnet18-pretrained-imagenet-frozen-backbone", "vit-small-patch16-224-augreg-in21k"):
                e = S.trial_entry(opt, bs, 0, axes={"arch": arch})
                entries.append(e)
                records.append(S.ok_record(e, 0.1 + 0.01 * bs / 32 + (0.2 if arch[0] == "r" else 0.0), 1e-3 * bs))
    d.mkdir(parents=True)
    S.write_sweep(d, "long labels", entries, records)
    return d


def test_every_figure_lies_inside_its_canvas(verified_dir, one_bs_dir, tmp_path):
    from tests.sweeps.scale import scale_sweep

    wide = scale_sweep(tmp_path / "wide", 3, name="a sweep with an extra width axis and a long name")
    figures = {**{f"verified/{k}": v for k, v in _every_figure(verified_dir).items()},
               **{f"one batch size/{k}": v for k, v in _every_figure(one_bs_dir).items()},
               **{f"width axis/{k}": v for k, v in _every_figure(wide).items()},
               **{f"long labels/{k}": v for k, v in _every_figure(_long_labels(tmp_path / "long")).items()}}
    assert len(figures) == 6 + 4 + 5 + 5
    problems = {name: bad for name, fig in figures.items() if (bad := _drawn_outside(fig))}
    assert problems == {}


def test_one_batch_size_has_no_lr_scaling_figure(one_bs_dir):
    result = load(one_bs_dir)
    assert report.fig_lr_scaling(result.report_info) is None
    assert list(result.plots) == ["loss_vs_lr", "loss_change", "min_loss_heatmap", "axis_effects"]
    assert not (one_bs_dir / "plots" / "lr_scaling.png").exists()
    assert 'alt="lr scaling"' not in (one_bs_dir / "report.html").read_text()
    fig = report.fig_loss_vs_lr(result.report_info)
    assert fig.get_size_inches()[0] >= 7.0 and "\n" in fig._suptitle.get_text()  # wide enough, title wrapped


def test_loss_change_panels_are_scaled_by_the_descent_not_by_a_spike(tmp_path):
    """A one-step jump of +10 at step 90, past the minimum, makes the loss change (SMA 20) drop
    to about -0.38 at step 110 - five times the descent's deepest point (about -0.073).
    The panel shows the descent, the spike runs off its bottom."""
    entries, records = [], []
    for seed in (0, 1):
        e = S.trial_entry("sgd", 32, seed)
        entries.append(e)
        rec = S.ok_record(e, 0.5, 1.0)
        curve = S.make_curve(0.5, 1.0)
        losses = curve.losses.copy()
        losses[90] += 10.0
        rec["curve"] = Curve(lrs=curve.lrs, losses=losses, stop_reason="completed", steps_planned=S.N_STEPS,
                             wall_s=1.0, params=curve.params).to_dict()
        records.append(rec)
    S.write_sweep(tmp_path, "spiky", entries, records)
    info = report.build_report(reduce_dir(tmp_path))
    change = (losses[20:] - losses[:-20]) / 20  # keras-lr-finder's rate of change, independently
    descent = change[:80 - 20].min()  # before the minimum of the loss (step ~85)
    assert change.min() < 3 * descent < 0
    bottom, top = report.fig_loss_change(info).axes[0].get_ylim()
    assert 1.0 * descent > bottom > 1.6 * descent, (bottom, descent)
    assert change.min() < bottom


def test_verification_figure_is_wide_and_no_marker_hides_another(verified_dir):
    info = report.build_report(reduce_dir(verified_dir))
    fig = report.fig_verification(info)
    assert fig.get_size_inches()[0] >= 10.0
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in panels) == ["adam", "sgd"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    px = fig.dpi / 72
    for ax in panels:
        points = []  # (configuration, x px, y px, marker radius px)
        for line in ax.get_lines():
            if line.get_marker() in (None, "None", "", " ") or not len(line.get_xdata()):
                continue
            xy = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
            points += [(line.get_gid(), x, y, line.get_markersize() * px / 2) for x, y in xy]
        assert len({p[0] for p in points}) == 3, ax.get_title()  # three configurations per optimizer
        for i, (ci, xi, yi, ri) in enumerate(points):
            for cj, xj, yj, rj in points[i + 1:]:
                if ci != cj:
                    assert np.hypot(xi - xj, yi - yj) >= ri + rj, (ax.get_title(), ci, cj, (xi, yi), (xj, yj))


# --------------------------------------------------------------------------- in a browser

_PROBE = """<script>window.addEventListener("load",function(){
var want=%s,out={},els=document.querySelectorAll("td,th,p,h2");
for(var w=0;w<want.length;w++){out[want[w]]=-1;for(var i=0;i<els.length;i++){
if(els[i].textContent.indexOf(want[w])>=0){out[want[w]]=els[i].getBoundingClientRect().bottom;break;}}}
var im=document.images,ok=0,alts=[];for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;alts.push(im[i].alt);}
document.title="PROBE "+JSON.stringify({where:out,loaded:ok,alts:alts,height:window.innerHeight});});</script>"""


def first_screen(report_html, tmp_path, want: list[str], shot) -> dict:
    """Open ``report_html`` in headless Chromium at 1400x900: where (the bottom of the first element
    holding) each text of ``want`` lies, how many images decoded and their alt texts; and a
    screenshot of the first screen at ``shot``, for a human to look at."""
    if CHROMIUM is None:
        missing_tool("chromium", "apt-get install -y chromium")
    probe = tmp_path / "probe.html"
    probe.write_text(report_html.read_text().replace("</body>", _PROBE % json.dumps(want) + "</body>"))
    out = _chromium(["--window-size=1400,900", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                    tmp_path, "probe")
    m = re.search(r"<title>PROBE (.*?)</title>", out.stdout, re.S)
    assert m, out.stderr[-2000:]
    _chromium(["--window-size=1400,900", f"--screenshot={shot}", report_html.as_uri()], tmp_path, "shot")
    import matplotlib.image as mpimg

    assert mpimg.imread(shot).shape[:2] == (900, 1400)
    return json.loads(html.unescape(m.group(1)))


def test_verified_report_first_screen_in_chromium(verified_dir, tmp_path):
    red = reduce_dir(verified_dir)
    verified_lr = fmt_lr(3 * _suggested(red, "sgd-bs32"))
    seen = first_screen(verified_dir / "report.html", tmp_path, [verified_lr, "3x higher", "Verified by short real"],
                        verified_dir / "report-first-screen.png")
    assert all(0 < bottom <= min(900, seen["height"]) for bottom in seen["where"].values()), seen
    assert seen["loaded"] == len(seen["alts"]) == 6, seen


def test_one_batch_size_report_in_chromium_has_no_lr_scaling_figure(one_bs_dir, tmp_path):
    seen = first_screen(one_bs_dir / "report.html", tmp_path, ["Recommendations", "adam-bs32"],
                        one_bs_dir / "report-first-screen.png")
    assert all(0 < bottom <= min(900, seen["height"]) for bottom in seen["where"].values()), seen
    assert seen["loaded"] == len(seen["alts"]) == 4, seen
    assert "lr scaling" not in seen["alts"] and "loss vs lr" in seen["alts"], seen


def test_ranks_within_groups_say_their_group_in_every_table(tmp_path, capsys):
    """A task axis whose losses start 2x apart is ranked within each task (``rank_group``):
    the report's ranking and the CLI's table show the group beside each rank."""
    entries, records = [], []
    for task, offset in (("easy", 0.1), ("hard", 2.5)):
        for opt in ("sgd", "adam"):
            e = S.trial_entry(opt, 32, 0, axes={"task": task})
            entries.append(e)
            records.append(S.ok_record(e, offset + (0.0 if opt == "adam" else 0.2), 1.0))
    S.write_sweep(tmp_path, "two tasks", entries, records)
    red = reduce_dir(tmp_path)
    assert sorted(red.ranking["rank"].tolist()) == [1, 1, 2, 2]
    table = report.build_report(red).section("Ranking").blocks[0]
    assert table.header[:3] == ["rank", "rank group", "config"]
    assert sorted((row[1], row[0], row[2]) for row in table.rows) == [
        ("task=easy", "1", "adam-bs32-taskeasy"), ("task=easy", "2", "sgd-bs32-taskeasy"),
        ("task=hard", "1", "adam-bs32-taskhard"), ("task=hard", "2", "sgd-bs32-taskhard")]
    from sweeps.cli import _print_ranking

    _print_ranking(red)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["rank", "rank", "group"]
    assert sorted(ln.split()[:3] for ln in lines[1:]) == [
        ["1", "task=easy", "adam-bs32-taskeasy"], ["1", "task=hard", "adam-bs32-taskhard"],
        ["2", "task=easy", "sgd-bs32-taskeasy"], ["2", "task=hard", "sgd-bs32-taskhard"]]


def test_the_verification_section_says_which_trainings_it_predicts(verified_dir):
    """The benchmark's horizon study: short verifications favour higher rates; the report says so."""
    page = html.unescape((verified_dir / "report.html").read_text())
    section = page.split("<h2>Verification</h2>")[1]
    assert "predicts trainings as long as its own" in section and "verify: {epochs: N}" in section
