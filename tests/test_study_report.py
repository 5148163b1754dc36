"""``eenas report``: every figure and table of a tiny search run, tied to the run's archs and their costs."""

from __future__ import annotations

import base64
import json
import re
import sys

import pandas as pd
import pytest

from eenas.arch import load_arch
from eenas.cli import main
from eenas.evaluate import evaluate_arch
from eenas.hardware import cost_arch
from eenas.study.report import highlights
from tests.conftest import run_eenas, small_search_config, start_search

FIGURES = ("pareto.png", "stages.png", "predictor.png", "hypervolume.png", "reference_comparison.png")


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, cache_dir):
    run = start_search(small_search_config(), tmp_path_factory.mktemp("run") / "search", cache_dir)
    return run, run.run()


def test_knee_lies_between_the_extremes():
    front = pd.DataFrame({"k": [0, 1, 2, 3, 4], "average_et": [1.0, 2.0, 4.0, 50.0, 100.0],
                          "accuracy": [0.50, 0.90, 0.91, 0.52, 0.95]})
    # k=3 lies farther from the line between the extremes, but below it: more ET for less accuracy.
    assert highlights(front) == [("lowest ET", 0), ("knee", 1), ("highest accuracy", 4)]
    bulging = pd.DataFrame({"k": [0, 1, 2], "average_et": [1.0, 50.0, 100.0], "accuracy": [0.5, 0.6, 0.95]})
    assert highlights(bulging)[1] == ("knee", 1)
    assert highlights(front.iloc[[0]]) == [("lowest ET & highest accuracy", 0)]
    assert highlights(front.iloc[:0]) == []


def test_report_cli_writes_every_figure_and_tables_that_match_the_archs(search_run, tmp_path, monkeypatch, capsys):
    search_run, found = search_run
    out = tmp_path / "report"
    result = run_eenas(monkeypatch, capsys, "report", search_run.out, "--out", out)
    assert result.code == 0, result.err
    text = (out / "report.md").read_text()
    for name in FIGURES:
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and f"]({name})" in text
    front = pd.read_csv(search_run.out / "pareto.csv")
    points = pd.read_csv(out / "report_points.csv")
    assert set(points["k"]) <= set(front["k"]) and {"lowest ET", "highest accuracy"} <= \
        {label for p in points["point"] for label in p.split(" & ")}
    for k, rows in points.groupby("k"):
        arch = load_arch(search_run.out / "pareto" / f"arch_{k}.json")
        cost, ev = cost_arch(arch, search_run.cfg.hardware), evaluate_arch(arch, search_run.pipeline)
        assert rows["cum_cycles"].tolist() == [e.cum_latency_cycles for e in cost.exits]
        assert rows["exit_ratio"].tolist() == pytest.approx(ev.exits["exit_ratio"].tolist())
        stats = json.loads((search_run.out / "pareto" / f"stats_{k}.json").read_text())
        assert stats["average_et"] == pytest.approx(ev.average_et)
    static = pd.read_csv(out / "report_static.csv").set_index("bits")
    for point in found.statics:
        assert static.loc[point["bits"], "accuracy"] == pytest.approx(point["accuracy"])
        assert static.loc[point["bits"], "static_et"] == pytest.approx(point["static_et"])
    history = pd.read_csv(search_run.out / "predictor.csv")
    assert f"{history['hypervolume'].iloc[-1]:.4g}" in text
    holdout = pd.read_csv(search_run.out / "holdout.csv")
    assert f"The {found.holdout.summary()}." in text and f"{holdout['value'].iloc[1]:.4g}" in text
    reference = pd.read_csv(out / "reference_comparison.csv")
    eenas_rows = reference[reference["group"].str.startswith("eenas")]
    assert eenas_rows["count"].sum() == len(front)  # every front arch, on the test split of its stats_<k>.json
    check_html(out, search_run.out)


def check_html(out, run_dir):
    """report.html: every figure embedded (the same PNG bytes), every table's rows, nothing fetched from outside."""
    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    in_page_order = ("pareto.png", "stages.png", "reference_comparison.png", "predictor.png", "hypervolume.png")
    assert sorted(in_page_order) == sorted(FIGURES)
    assert [base64.b64decode(data) for data in images] == [(out / name).read_bytes() for name in in_page_order]
    assert page.count("<img") == len(FIGURES) and not re.search(r"(src|href)=\"https?:", page)
    csv = {name: pd.read_csv(path) for name, path in (("front", run_dir / "pareto.csv"),
                                                      ("static", out / "report_static.csv"),
                                                      ("points", out / "report_points.csv"),
                                                      ("reference", out / "reference_comparison.csv"),
                                                      ("history", run_dir / "predictor.csv"),
                                                      ("holdout", run_dir / "holdout.csv"))}
    tables = re.findall(r"<table.*?</table>", page, flags=re.S)
    # front, statics, points, reference, predictor history, holdout, hypervolume history: a header row and each row
    sizes = [len(csv[name]) for name in ("front", "static", "points", "reference", "history", "holdout", "history")]
    assert [t.count("<tr") for t in tables] == [n + 1 for n in sizes]
    for table, (name, column) in zip(tables, (("front", "et_ratio"), ("static", "static_et"), ("points", "cum_et"),
                                              ("reference", "count"), ("history", "tau_new"), ("holdout", "value"),
                                              ("history", "hypervolume"))):
        cells = re.findall(r"<td>(.*?)</td>", table)
        assert all(f"{v:.4g}" in cells for v in csv[name][column].dropna()), (name, column)


def test_report_of_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["eenas", "report", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (f"eenas: error: {tmp_path}: no config.json (is it the directory of a "
                                               "finished 'eenas search'?)")
