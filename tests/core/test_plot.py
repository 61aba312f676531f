"""Plots: return Axes with the expected artists, write PNGs atomically (fast tier)."""

from __future__ import annotations

import os

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lrrt_core.curve import Curve
from lrrt_core.plot import PALETTE, plot_curve, plot_curves, plot_loss_change, save_figure
from lrrt_core.suggest import Suggestion, steepest


def make_curve(c=-2.5, n=200, **kw):
    lrs = np.logspace(-6, 1, n)
    x = np.log10(lrs)
    losses = 2.3 - np.tanh((x - c) / 0.6) + np.exp((x - 0.3) * 2.5)
    return Curve(lrs, losses, **kw)


def labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_palette_is_okabe_ito():
    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(PALETTE) == okabe_ito and len(PALETTE) == 8
    assert all(mcolors.is_color_like(c) for c in PALETTE)


def test_plot_curve_new_axes_and_suggestion(tmp_path):
    c = make_curve(stop_reason="diverged", diverged_lr=5.0)
    ax = plot_curve(c, suggestion="steepest")
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "learning rate (log scale)" and ax.get_ylabel() == "loss"
    got = labels(ax)
    assert "raw loss" in got and "smoothed loss (EMA)" in got
    s = steepest(c)
    assert any(lbl.startswith("steepest: lr = ") for lbl in got)
    marker = [ln for ln in ax.get_lines() if ln.get_label().startswith("steepest")][0]
    assert marker.get_xdata()[0] == pytest.approx(s.lr)
    assert any(f"{s.lr:.2e}" in t.get_text() for t in ax.texts)
    assert any("stopped" in lbl for lbl in got)
    out = save_figure(ax.figure, tmp_path / "curve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_curve_on_given_axes_and_no_raw():
    fig = Figure()
    ax0 = fig.add_subplot()
    ax = plot_curve(make_curve(), ax0, show_raw=False, label="adam", skip_start=10, skip_end=5)
    assert ax is ax0
    assert labels(ax) == ["adam"]
    assert len(ax.get_lines()[0].get_xdata()) == 185


def test_plot_curve_accepts_suggestion_object_and_no_suggestion():
    c = make_curve()
    ax = plot_curve(c, suggestion=Suggestion("valley", 1e-3, None))
    assert any(lbl.startswith("valley") for lbl in labels(ax))
    flat = Curve(np.logspace(-5, 0, 50), np.ones(50))
    ax = plot_curve(flat, suggestion="valley")
    assert any("no suggestion" in t.get_text() for t in ax.texts)
    lo, hi = ax.get_ylim()
    assert hi - lo > 0.05  # a flat curve gets a visible band


def test_plot_curve_short_and_empty_curves():
    assert isinstance(plot_curve(Curve(np.empty(0), np.empty(0)), suggestion="steepest"), Axes)
    ax = plot_curve(Curve([1e-3, 1e-2], [1.0, 0.5]), suggestion="steepest", skip_start=10, skip_end=5)
    assert len(ax.get_lines()[0].get_xdata()) >= 1
    nan = Curve(np.logspace(-3, 0, 4), [1.0, 0.9, np.nan, np.nan])
    assert isinstance(plot_curve(nan), Axes)


def test_plot_curve_linear_ladder_uses_linear_axis():
    lrs = np.linspace(1e-3, 1.0, 100)
    ax = plot_curve(Curve(lrs, 2 - np.tanh((lrs - 0.3) / 0.1), params={"ladder": "linear"}))
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "learning rate"
    assert plot_curve(Curve(lrs, lrs), xscale="log").get_xscale() == "log"


def test_plot_loss_change(tmp_path):
    c = make_curve(n=300)
    ax = plot_loss_change(c, sma=20, y_lim=(-0.05, 0.05), label="sgd")
    assert ax.get_xscale() == "log"
    assert "loss change" in ax.get_ylabel()
    assert ax.get_ylim() == (-0.05, 0.05)
    line = [ln for ln in ax.get_lines() if ln.get_label() == "sgd"][0]
    y = np.asarray(line.get_ydata(), dtype=float)
    raw = c.losses
    expected = (raw[20:] - raw[:-20]) / 20
    np.testing.assert_allclose(y[10:], expected[: len(y) - 10])  # window starts at 10; first 10 undefined
    assert np.isnan(y[:10]).all()
    assert any(lbl.startswith("sma_rule") for lbl in labels(ax))
    save_figure(ax, tmp_path / "change.png")
    assert (tmp_path / "change.png").stat().st_size > 1000


def test_plot_curves_legend_colours(tmp_path):
    curves = {"sgd": make_curve(-3.0), "adam": make_curve(-1.5), "rmsprop": make_curve(-2.0)}
    ax = plot_curves(curves)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" ")[0] for t in legend] == ["sgd", "adam", "rmsprop"]
    assert all("steepest" in t for t in legend)
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert [mcolors.to_hex(ln.get_color()).upper() for ln in lines] == [p.upper() for p in PALETTE[:3]]
    ax2 = plot_curves([make_curve(), make_curve()], labels=["a", "b"], suggestion=None, smoothed=False)
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["a", "b"]
    assert ax2.get_ylabel() == "loss"
    with pytest.raises(ValueError):
        plot_curves([make_curve()], labels=["a", "b"])
    save_figure(ax.figure, tmp_path / "sub" / "curves.png")
    assert (tmp_path / "sub" / "curves.png").exists()


def test_save_figure_atomic_leaves_no_temp_on_error(tmp_path, monkeypatch):
    ax = plot_curve(make_curve())
    target = tmp_path / "x.png"
    target.write_bytes(b"old")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ax.figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        save_figure(ax.figure, target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.png"]


def test_save_figure_mode_follows_umask(tmp_path):
    path = save_figure(plot_curve(make_curve()), tmp_path / "m.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_plot_loss_change_marks_sma_rule_of_the_curve():
    """On a NaN-stopped curve the mark is sma_rule(curve) (keras-lr-finder's record: the NaN step is
    one of the 5 skipped), as LRFinder.get_best_lr, not the rule on the cut arrays."""
    from lrrt_core.suggest import sma_rule

    lrs = np.logspace(-6, 1, 300)[:250]
    losses = 3.0 - 2.0 * (np.arange(250) / 250) ** 3  # falls faster and faster until the NaN at 250
    c = Curve(lrs, losses, "nonfinite", 1.0, 300, nonfinite_loss="nan")
    s = sma_rule(c, sma=5)
    assert s.index == 245 and sma_rule(lrs, losses, sma=5).index == 244
    ax = plot_loss_change(c, sma=5)
    marks = [ln for ln in ax.get_lines() if ln.get_label().startswith("sma_rule")]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [s.lr]


def test_default_suggestion_shows_the_centred_curve_it_reads():
    """With the default method the plot draws the centred average and its minimum (3x the pick),
    and the marker sits on that curve at the suggested rate."""
    from lrrt_core.curve import centered
    from lrrt_core.plot import plot_curve
    from lrrt_core.suggest import centered_min_div3

    lrs = np.logspace(-5, 1, 121)
    x = np.log10(lrs)
    losses = 2.3 - 1.5 * (1 + np.tanh((x + 3) / 0.4)) / 2 + np.where(x > -1, 4 * (x + 1) ** 2, 0.0)
    curve = Curve(lrs, losses)
    ax = plot_curve(curve, suggestion="centered_min_div3")
    labels = [line.get_label() for line in ax.get_lines()]
    assert "centred average (0.5 decade)" in labels and "smoothed loss (EMA)" in labels
    s = centered_min_div3(curve)
    vline = next(line for line in ax.get_lines() if line.get_label().startswith("its minimum"))
    assert vline.get_xdata()[0] == pytest.approx(lrs[s.index]) == pytest.approx(3 * s.lr)
    marker = next(line for line in ax.get_lines() if line.get_label().startswith("centered_min_div3"))
    smooth = centered(lrs, losses)
    assert marker.get_xdata()[0] == pytest.approx(s.lr)
    assert marker.get_ydata()[0] == pytest.approx(np.interp(np.log10(s.lr), x, smooth))
