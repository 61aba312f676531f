"""sweeps.report: figures, self-contained HTML, Markdown, escaping, headless Chromium check."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sweeps import reduce, report
from sweeps.report.blocks import Figure, ItemList, Labelled, Paragraph, Table
from tests.conftest import missing_tool
from tests.sweeps import synthetic as S

XSS = "<script>alert(1)</script>"
PLOTS = ("loss_vs_lr", "loss_change", "lr_scaling", "min_loss_heatmap")
#: every figure of an unverified report, in page order (per-axis effects come before "Plots").
FIGURES = ("axis_effects", *PLOTS)


@pytest.fixture(scope="module")
def partial_dir(tmp_path_factory):
    """The standard sweep, one trial missing, one failed, named with markup; outputs written."""
    d = tmp_path_factory.mktemp("partial")
    S.standard_sweep(d, name=f"{XSS} demo | sweep", skip={"adam-bs512-s1"},
                     fail={"sgd-bs32-s1": f"Traceback (most recent call last):\n  ...\nValueError: bad {XSS} | x"})
    red = report.rebuild(d)
    return d, red


def _imgs(html_text):
    return re.findall(r'<img [^>]*src="([^"]*)"', html_text)


def test_html_is_self_contained(partial_dir):
    d, _ = partial_dir
    text = (d / "report.html").read_text()
    srcs = _imgs(text)
    assert len(srcs) == len(FIGURES)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in text and "http://" not in text and "https://" not in text
    # one script, the report's own fixed one (sorting / filtering); nothing else, and the sweep's markup is escaped
    assert text.count(report.TABLE_SCRIPT_TAG) == 1
    assert "<script" not in text.replace(report.TABLE_SCRIPT_TAG, "").lower()


def test_html_content_partial_results(partial_dir):
    d, red = partial_dir
    text = (d / "report.html").read_text()
    assert "12 trials: 10 ok, 1 failed, 1 missing" in text
    assert "Partial results" in text
    assert text.index("<h2>Recommendations</h2>") < text.index("<h2>Ranking</h2>") < text.index("<h2>Plots</h2>")
    assert "Failed trials (1)" in text and "Missing trials (1)" in text
    assert "adam-bs512-s1" in text.split("Missing trials (1)")[1]
    assert "ValueError: bad &lt;script&gt;alert(1)&lt;/script&gt; | x" in text
    # one recommendation per optimizer, naming the best batch size
    assert "<strong>adam</strong>: best at batch size 32, rank 1 of 6" in text
    assert "<strong>sgd</strong>: best at batch size 128, rank 2 of 6" in text
    assert "Goyal et al. 2017" in text


def test_sweep_name_with_script_is_text(partial_dir):
    d, _ = partial_dir
    html_text = (d / "report.html").read_text()
    md = (d / "report.md").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; demo | sweep" in html_text
    assert XSS not in html_text and XSS not in md
    assert "<script" not in md.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; demo \\| sweep" in md


def test_markdown_report(partial_dir):
    d, _ = partial_dir
    md = (d / "report.md").read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert refs == [f"plots/{p}.png" for p in FIGURES]
    for r in refs:
        assert (d / r).is_file()
    assert "**12 trials: 10 ok, 1 failed, 1 missing**" in md
    assert "## Failed trials (1)" in md and "## Missing trials (1)" in md
    # ranking table: header + separator + 6 rows, each with the same number of cells
    table = [line for line in md.split("## Ranking")[1].split("##")[0].splitlines() if line.startswith("|")]
    assert len(table) == 8
    assert len({len(re.split(r"(?<!\\)\|", line)) for line in table}) == 1


def test_md_escape():
    assert report.md_escape("a|b<c>&_*") == "a\\|b&lt;c&gt;&amp;\\_\\*"
    assert report.md_escape("line1\nline2") == "line1 line2"
    assert report.md_escape(None) == ""


def test_figures_exist_and_are_nontrivial(partial_dir):
    d, _ = partial_dir
    import matplotlib.image as mpimg

    for p in FIGURES:
        img = mpimg.imread(d / "plots" / f"{p}.png")
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # not a blank canvas


def test_seed_bands_mean_and_range(tmp_path):
    S.standard_sweep(tmp_path)
    red = reduce.reduce_dir(tmp_path)
    bands = report.seed_bands(red)
    b = bands[(bands["config"] == "sgd-bs128") & bands["full"]]
    assert (b["n"] == 2).all() and (b["lo"] <= b["mean"] + 1e-12).all() and (b["mean"] <= b["hi"] + 1e-12).all()
    assert bands["lr"].min() > 0
    change = report.seed_bands(red, value="loss_change")
    assert np.isfinite(change["mean"]).any()


def test_falling_range_and_recommendations(tmp_path):
    lr = np.logspace(-5, 0, 6)
    assert report.falling_range(lr, np.array([2.0, 2.0, 1.5, 1.0, 0.5, 3.0])) == (1e-3, 1e-1)
    assert all(np.isnan(report.falling_range(lr, np.arange(6.0))))  # never falls
    S.standard_sweep(tmp_path)
    red = reduce.reduce_dir(tmp_path)
    recs = {r.optimizer: r for r in report.recommendations(red)}
    assert recs["adam"].batch_size == 32 and recs["adam"].rank == 1
    assert recs["sgd"].batch_size == 128 and recs["sgd"].rank == 2
    assert recs["sgd"].slope == pytest.approx(1.0, abs=1e-9)
    for r in recs.values():
        assert r.falling_lo < r.suggested_lr < r.falling_hi


def test_report_without_any_ok_trial(tmp_path):
    entries = [S.trial_entry("sgd", 32, s) for s in (0, 1)]
    S.write_sweep(tmp_path, "all failed", entries, [S.failed_record(entries[0], "boom")])
    red = report.rebuild(tmp_path)
    text = (tmp_path / "report.html").read_text()
    assert "No plots" in text and "Failed trials (1)" in text and "Missing trials (1)" in text
    assert not (tmp_path / "plots").exists() or not list((tmp_path / "plots").glob("*.png"))
    assert red.ranking["rank"].isna().all() and len(red.ranking) == 1  # no finished trial: unranked
    assert "no successful trial" in text


def test_labels_with_dollar_signs_do_not_break_plots(tmp_path):
    entries = [S.trial_entry("$x$_{", bs, 0) for bs in (32, 64)]
    recs = [S.ok_record(e, 0.1, 1e-3 * bs) for e, bs in zip(entries, (32, 64))]
    S.write_sweep(tmp_path, "$", entries, recs)
    report.rebuild(tmp_path)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 5  # the four plots and the per-axis effects


def test_analysis_modules_do_not_import_ray_or_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        import sweeps.store, sweeps.reduce, sweeps.report
        bad = [m for m in ("ray", "tensorflow", "keras") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars"]
_CHECK = ('<script>window.addEventListener("load",function(){var im=document.images,ok=0;'
          'for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}'
          'document.title="IMGCHECK "+ok+"/"+im.length;});</script>')


def _chromium(args, tmp_path, name):
    cmd = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_html_opens_in_headless_chromium_with_every_image_loaded(partial_dir, tmp_path):
    if CHROMIUM is None:
        missing_tool("chromium", "apt-get install -y chromium")
    d, _ = partial_dir
    # The report has no script of its own; a COPY gets a tiny one that counts decoded images.
    probe = tmp_path / "probe.html"
    probe.write_text((d / "report.html").read_text().replace("</body>", _CHECK + "</body>"))
    out = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path, "dom")
    title = re.search(r"<title>([^<]*)</title>", out.stdout)
    assert title, out.stderr[-2000:]
    assert title.group(1) == f"IMGCHECK {len(FIGURES)}/{len(FIGURES)}"

    # The real report (no probe) renders; the screenshot is kept for a human to look at.
    shot = d / "report-screenshot.png"
    out = _chromium(["--window-size=1280,4000", f"--screenshot={shot}", (d / "report.html").as_uri()], tmp_path, "shot")
    assert shot.is_file() and shot.stat().st_size > 50_000, out.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (4000, 1280)
    assert img[..., :3].std() > 0.05


# --------------------------------------------------------------------------- markup in labels and axis values
MARKUP_OPT = "<marquee>adam|w</marquee>"
MARKUP_AXIS = "<blink>relu</blink>|[x](http://e.x)"


@pytest.fixture(scope="module")
def markup_dir(tmp_path_factory):
    """An optimizer label and a string axis value with HTML and Markdown markup in them."""
    d = tmp_path_factory.mktemp("markup")
    entries, records = [], []
    for opt in ("sgd", MARKUP_OPT):
        for bs in (32, 64):
            for act in ("tanh", MARKUP_AXIS):
                e = S.trial_entry(opt, bs, 0, axes={"act": act})
                entries.append(e)
                records.append(S.ok_record(e, 0.1 + 0.01 * bs / 32 + (0.2 if act == "tanh" else 0.0), 1e-3 * bs))
    S.write_sweep(d, "markup", entries, records)
    report.rebuild(d)
    return d


def test_markup_in_an_optimizer_label_and_an_axis_value_is_escaped_in_html(markup_dir):
    text = (markup_dir / "report.html").read_text()
    low = text.lower()
    assert "<marquee" not in low and "<blink" not in low
    # In the ranking table (optimizer and axis columns, config names) and the scaling table.
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert "&lt;marquee&gt;adam|w&lt;/marquee&gt;" in cells
    assert "&lt;blink&gt;relu&lt;/blink&gt;|[x](http://e.x)" in cells
    assert any(c.startswith("&lt;marquee&gt;adam|w&lt;/marquee&gt;, act=") for c in cells)  # scaling table series
    assert f"<strong>{MARKUP_OPT}</strong>" not in text
    assert "<strong>&lt;marquee&gt;adam|w&lt;/marquee&gt;</strong>:" in text  # its recommendation


def test_markup_in_an_optimizer_label_and_an_axis_value_is_escaped_in_markdown(markup_dir):
    md = (markup_dir / "report.md").read_text()
    low = md.lower()
    assert "<marquee" not in low and "<blink" not in low
    assert "[x](" not in md and "\\[x\\](http://e.x)" in md  # brackets escaped: no link can form
    rows = [line for line in md.split("## Ranking")[1].split("##")[0].splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 8
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in rows}
    assert len(widths) == 1, rows  # a "|" inside a label did not split a cell
    cells = [c.strip() for line in rows[2:] for c in re.split(r"(?<!\\)\|", line)]
    assert report.md_escape(MARKUP_OPT) in cells and report.md_escape(MARKUP_AXIS) in cells
    assert report.md_escape(MARKUP_OPT) == "&lt;marquee&gt;adam\\|w&lt;/marquee&gt;"


# --------------------------------------------------------------------------- seed bands: values
def test_seed_band_is_the_min_and_max_over_seeds(tmp_path):
    """Recompute each band from the seeds' own curves: lo/hi are the seeds' min/max, not the mean."""
    S.standard_sweep(tmp_path)
    red = reduce.reduce_dir(tmp_path)
    bands = report.seed_bands(red)
    widths = []
    for config, b in bands.groupby("config"):
        grid = np.log10(b["lr"].to_numpy())
        per_seed = []
        for _, t in red.curves[red.curves["config"] == config].groupby("trial"):
            x, y = np.log10(t["lr"].to_numpy()), t["smoothed_loss"].to_numpy()
            per_seed.append(np.where((grid >= x.min()) & (grid <= x.max()), np.interp(grid, x, y), np.nan))
        stack = np.vstack(per_seed)
        full = b["full"].to_numpy()
        assert full.sum() > 20
        np.testing.assert_allclose(b["lo"].to_numpy()[full], stack[:, full].min(axis=0), rtol=1e-9)
        np.testing.assert_allclose(b["hi"].to_numpy()[full], stack[:, full].max(axis=0), rtol=1e-9)
        np.testing.assert_allclose(b["mean"].to_numpy()[full], stack[:, full].mean(axis=0), rtol=1e-9)
        widths.append(np.max(b["hi"].to_numpy()[full] - b["lo"].to_numpy()[full]))
    # The seeds are 0.1 apart in loss (and 4x apart in lr): every band has a real width.
    assert min(widths) > 0.09


def test_seed_band_is_drawn_from_lo_to_hi(tmp_path):
    """The shaded area of figure (a) spans each panel's band (min to max over seeds), not the mean."""
    from matplotlib.collections import PolyCollection

    S.standard_sweep(tmp_path)
    red = reduce.reduce_dir(tmp_path)
    info = report.build_report(red)
    bands = info.bands
    fig = report.fig_loss_vs_lr(info)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith("batch size")]
    assert len(panels) == len(S.BATCH_SIZES)
    for ax in panels:
        bs = int(ax.get_title().split()[-1])
        sub = bands[bands["batch_size"] == bs]
        polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(polys) == sub["config"].nunique()
        ys = np.concatenate([p.get_paths()[0].vertices[:, 1] for p in polys])
        assert ys.min() == pytest.approx(sub["lo"].min(), rel=1e-9)
        assert ys.max() == pytest.approx(sub["hi"].max(), rel=1e-9)
        for p, (_, g) in zip(polys, sub.groupby("config", sort=False)):
            v = p.get_paths()[0].vertices[:, 1]
            assert v.max() - v.min() >= (g["hi"] - g["lo"]).max() - 1e-12


# --------------------------------------------------------------------------- the report as data (nothing drawn)
def test_report_info_holds_every_section_as_data(tmp_path):
    S.standard_sweep(tmp_path, name="info", skip={"adam-bs512-s1"}, fail={"sgd-bs32-s1": "ValueError: boom"})
    info = report.build_report(reduce.reduce_dir(tmp_path))
    assert [s.title for s in info.sections] == [
        "Recommendations", "Ranking", "Per-axis effects", "Training recipes", "Plots",
        "Learning rate vs batch size", "Failed trials (1)", "Missing trials (1)"]
    assert info.summary == "12 trials: 10 ok, 1 failed, 1 missing" and info.banner.startswith("Partial results")
    table, = info.section("Ranking").blocks
    assert isinstance(table, Table) and table.css_class == "ranking" and table.best_first and not table.rest
    assert [row[:2] for row in table.rows[:2]] == [["1", "adam-bs32"], ["2", "sgd-bs128"]]
    assert table.header[4] == "seeds ok / failed / missing" and table.rows[0][4] == "2 / 0 / 0"
    labelled = dict(info.section("Recommendations").blocks[-1].items)
    assert labelled["adam"].startswith("best at batch size 32, rank 1 of 6")
    assert {r.optimizer: r.batch_size for r in info.recommendations} == {"adam": 32, "sgd": 128}
    failed = info.section("Failed").blocks[0]
    assert (failed.summary, failed.code) == ("sgd-bs32-s1", S.trial_id("sgd-bs32-s1"))
    assert info.section("Missing").blocks[1] == ItemList([("adam-bs512-s1", S.trial_id("adam-bs512-s1"), "")])
    assert Figure("loss_vs_lr", report.CAPTIONS["loss_vs_lr"]) in info.section("Plots").blocks
    assert [e.axis for e in info.effects] == ["optimizer", "batch_size", "seed"]
    assert set(info.focus) == set(info.reduction.ranking["config"])  # 6 configurations: all in focus


def test_the_seed_bands_are_computed_once_per_report(tmp_path, monkeypatch):
    from sweeps.report import info as info_module

    calls = []
    real = info_module.seed_bands
    monkeypatch.setattr(info_module, "seed_bands", lambda red, *a, **k: calls.append(a) or real(red, *a, **k))
    S.standard_sweep(tmp_path)
    report.rebuild(tmp_path)  # every figure, the HTML page and the Markdown file
    assert calls == [(), ("loss_change",)]  # the smoothed loss once, the loss change once


def test_an_empty_report_says_so_in_data(tmp_path):
    S.write_sweep(tmp_path, "nothing planned", [], [])
    info = report.build_report(reduce.reduce_dir(tmp_path))
    assert info.recommendations == [] and info.bands.empty
    assert info.section("Ranking").blocks == [Paragraph("No configurations.")]
    assert info.section("Recommendations").blocks == [Paragraph("No successful trials yet."), Labelled([])]
    assert info.section("Learning rate vs batch size").blocks[-1] == Paragraph(
        "No fit: each optimizer needs successful trials at two or more batch sizes.")
