"""The HTML report, on a small real run: each figure holds exactly what the stored study says (the front
trace its front pairs, the verified trace its verified pairs, the per-layer bars the pair's latency), the
page is one offline file, and bad requests are one-line errors before anything is read or written."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from codesign.cli import main
from codesign.config import load_config
from codesign.core.errors import CodesignError
from codesign.experiment import run_experiment
from codesign.results import _report_figures as figures
from codesign.results.front import compare_fronts, load_front
from codesign.results.pair import load_pair
from codesign.results.report import (
    REPORT_NAME,
    Report,
    build_report,
    check_paths,
    default_output,
    png_names,
    sources,
    write_report,
)
from codesign.search.storage import open_existing_storage, verified_records
from tests.helpers import digits_yaml

TIGHT = 'constraints: {dsp_fraction: "<= 0.8", latency_ms: "<= 0.075"}'
"""The helper's constraint plus a latency bound that some of seed 0's trials miss (infeasible points)."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    text = digits_yaml(tmp, trials=6).replace('constraints: {dsp_fraction: "<= 0.8"}', TIGHT)
    (tmp / "exp.yaml").write_text(text)
    result = run_experiment(load_config(tmp / "exp.yaml"), out_dir=tmp / "out")
    assert result.verification is not None
    return tmp / "out"


@pytest.fixture(scope="module")
def report(run: Path) -> Report:
    return build_report(sources([run]))


def _figure(report: Report, section: str) -> Any:
    found = {s.id: s for s in report.sections}[section]
    assert found.figure is not None, found.caption
    return found.figure


def _trace(figure: Any, meta: str) -> Any:
    matches = [t for t in figure.data if t.meta == meta]
    assert len(matches) == 1, [t.meta for t in figure.data]
    return matches[0]


def test_the_front_trace_holds_exactly_the_front_pairs(run: Path, report: Report) -> None:
    front = load_front(run)
    assert len(front) > 0
    fig = _figure(report, "front")
    searched = _trace(fig, "front-searched-0")
    assert len(searched.x) == len(front)
    assert sorted(searched.customdata) == sorted(p.trial for p in front.pairs())
    by_trial = {p.trial: p for p in front.pairs()}
    for trial, x, y in zip(searched.customdata, searched.x, searched.y, strict=True):
        assert (x, y) == (by_trial[trial].metrics["latency_ms"], by_trial[trial].metrics["accuracy"])
    tested = _trace(fig, "front-test-0")
    verified = {p.trial for p in front.pairs() if "accuracy_test" in p.metrics}
    assert verified and sorted(tested.customdata) == sorted(verified)
    for trial, y in zip(tested.customdata, tested.y, strict=True):
        assert y == by_trial[trial].metrics["accuracy_test"]  # at the test-split number, not the searched one


def test_every_completed_trial_is_drawn_once_and_infeasible_ones_apart(run: Path, report: Report) -> None:
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(run))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    fig = _figure(report, "front")
    drawn = [n for meta in ("trials-0", "infeasible-0", "front-searched-0") for n in _trace(fig, meta).customdata]
    assert sorted(drawn) == sorted(t.number for t in done)
    infeasible = {t.number for t in done if any(v > 0 for v in t.constraints.values())}
    assert infeasible, "the latency bound should leave some trial infeasible"
    assert set(_trace(fig, "infeasible-0").customdata) == infeasible


def test_hover_names_architecture_bits_accelerator_and_every_metric(run: Path, report: Report) -> None:
    front = load_front(run)
    searched = _trace(_figure(report, "front"), "front-searched-0")
    texts = dict(zip(searched.customdata, searched.text, strict=True))
    for pair in front.pairs():
        text = texts[pair.trial]
        assert f"trial {pair.trial}" in text
        assert pair.candidate.arch_id in text
        assert pair.candidate.bits_summary() in text
        assert pair.candidate.accelerator_summary() in text
        for metric in pair.metrics:
            assert f"{metric}: " in text, metric


def test_the_hypervolume_curve_ends_at_the_compared_hypervolume(run: Path, report: Report) -> None:
    front = load_front(run)
    curve = _trace(_figure(report, "hypervolume"), "hypervolume-0")
    compared = compare_fronts([front])
    assert list(curve.x) == list(range(1, len(curve.x) + 1))
    assert len(curve.x) == sum(r["state"] == "COMPLETE" for r in front.trial_rows)
    assert np.all(np.diff(curve.y) >= 0)
    assert curve.y[-1] == pytest.approx(compared["hypervolume"].iloc[0])
    assert report.reference == compared.attrs["reference"]
    assert "(random)" in curve.name  # named by the study's strategy


def test_searched_against_verified_numbers(run: Path, report: Report) -> None:
    study = optuna.load_study(study_name="dg", storage=open_existing_storage(run))
    records = verified_records(study)
    fig = _figure(report, "verified")
    accuracy = _trace(fig, "verified-accuracy-0")
    assert sorted(accuracy.customdata) == sorted(int(k) for k in records)
    for trial, x, y in zip(accuracy.customdata, accuracy.x, accuracy.y, strict=True):
        assert (x, y) == (records[str(trial)]["searched"]["accuracy"], records[str(trial)]["metrics"]["accuracy"])
    latency = _trace(fig, "verified-latency_ms-0")
    assert list(latency.x) == list(latency.y)  # simulated: the same on any split
    caption = {s.id: s for s in report.sections}["verified"].caption
    assert "simulated" in caption


def test_resources_are_shares_of_the_device_with_its_constraint(run: Path, report: Report) -> None:
    front = load_front(run)
    fig = _figure(report, "resources")
    dsp = _trace(fig, "resource-dsp")
    assert list(dsp.customdata) == [p.trial for p in front.pairs()]
    assert list(dsp.y) == [p.metrics["dsp_fraction"] for p in front.pairs()]
    assert all(t.meta != "resource-uram" for t in fig.data)  # the xczu3eg has no URAM and no pair uses any
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == [0.8, 1.0]  # the experiment's dsp_fraction constraint and the whole device
    assert "xczu3eg" in {s.id: s for s in report.sections}["resources"].caption


def test_the_layer_bars_sum_to_the_pairs_latency(run: Path, report: Report) -> None:
    front = load_front(run)
    best = front.pairs()[0]  # highest accuracy: the default pair
    view = report.views[0]
    assert view.pair is not None and view.pair.trial == best.trial
    fig = _figure(report, "layers")
    bars = [t for t in fig.data if str(t.meta).startswith("layers-")]
    assert sum(len(t.y) for t in bars) == len(view.pair.layers)
    assert math.fsum(v for t in bars for v in t.y) == pytest.approx(best.metrics["latency_ms"], rel=1e-9)
    assert {t.name for t in bars} == {f"{layer.bound}-bound" for layer in view.pair.layers}
    roof = _figure(report, "roofline")
    points = [t for t in roof.data if t.meta in ("roofline-compute", "roofline-memory")]
    assert sum(len(t.x) for t in points) == len(figures.roofline_layers(view.pair.layers))
    assert any(t.meta == "roofline-memory-roof" for t in roof.data)


def test_a_chosen_pair_and_a_pair_without_layers(run: Path, report: Report) -> None:
    other = next(p.trial for p in load_front(run).pairs()[1:])
    chosen = build_report(sources([run], pairs=[other]))
    assert chosen.views[0].pair is not None and chosen.views[0].pair.trial == other
    assert f"trial {other}, chosen with --pair" in {s.id: s for s in chosen.sections}["layers"].caption
    _, pair = load_pair(run, other)
    bare = dataclasses.replace(report.views[0], pair=dataclasses.replace(pair, layers=()))
    assert figures.layer_figure(bare) is None and figures.roofline_figure(bare) is None


def test_the_page_is_one_offline_file(run: Path, report: Report, tmp_path: Path) -> None:
    path = report.write_html(tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("plotly.js v") == 1  # one copy of plotly.js, inline
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"""<link[^>]*href=["']?https?:""", text)
    head, _, rest = text.partition('<script type="text/javascript" id="plotly-js">')
    _, _, page = rest.partition("</script>")
    assert "https://" not in head + page and "http://" not in head + page  # outside plotly.js's own bundle
    for section in report.sections:
        if section.figure is not None:
            assert f'<div id="{section.id}" class="figure"></div>' in page
    assert len(text.encode()) < 8_000_000


def test_several_studies_share_one_reference(run: Path) -> None:
    both = build_report(sources([run, run]))
    assert [v.label for v in both.views] == ["dg [1]", "dg [2]"]
    curves = [_trace(_figure(both, "hypervolume"), f"hypervolume-{i}") for i in (0, 1)]
    assert list(curves[0].y) == list(curves[1].y)
    ids = {s.id for s in both.sections}
    assert {"resources-1", "resources-2", "layers-1", "layers-2", "roofline-2"} <= ids
    assert {f"{s}.png" for s in ids} <= set(png_names(2))


def test_the_outputs_are_checked_before_any_study_is_read(run: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    taken = tmp_path / "taken.html"
    taken.write_text("mine")
    with pytest.raises(CodesignError, match="exists; pass --force"):
        write_report([missing], taken)  # the file is refused before the missing run is noticed
    assert taken.read_text() == "mine"
    (tmp_path / "png").mkdir()
    (tmp_path / "png" / "front.png").write_bytes(b"mine")
    with pytest.raises(CodesignError, match="already holds front.png"):
        check_paths(tmp_path / "new.html", tmp_path / "png", 1)
    with pytest.raises(CodesignError, match="is a folder"):
        check_paths(tmp_path, None, 1)
    with pytest.raises(CodesignError, match="no study found"):
        write_report([missing], taken, force=True)
    written = write_report([run], taken, force=True)
    assert written == taken and taken.stat().st_size > 1_000_000
    assert default_output([run]) == run / REPORT_NAME
    assert default_output([run, run]) == Path(REPORT_NAME)


def test_the_command_writes_the_report_and_bad_requests_are_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "r.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    for args, expected in (
        (["--pair", "99"], "no evaluated trial 99"),
        (["--pair", "1", "--pair", "2"], "--pair given 2 times for 1 study;"),
        (["--study", "nope"], "study 'nope' not found"),
        ([], "exists; pass --force"),
    ):
        assert main(["report", str(run), "--out", str(out), *args] + (["--force"] if args else [])) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_without_a_browser_the_png_error_says_what_to_install_and_keeps_the_html(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-browser"))
    out = tmp_path / "r.html"
    with pytest.raises(CodesignError, match="apt-get install chromium") as caught:
        write_report([run], out, png_dir=tmp_path / "png")
    assert "BROWSER_PATH" in str(caught.value) and str(out) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert out.stat().st_size > 1_000_000  # the HTML was written first
