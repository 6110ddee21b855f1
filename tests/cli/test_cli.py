"""The ``codesign`` command end to end: run, pareto (query, filter, re-rank, export, plot, compare),
hardware, export; bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from codesign.cli import main
from codesign.nn.data import load_dataset
from codesign.results.export import load_exported
from tests.helpers import digits_yaml, nb201_yaml


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def nb_run(tmp_path_factory: pytest.TempPathFactory, nb201_table: Path) -> Path:
    tmp = tmp_path_factory.mktemp("nb")
    exp = tmp / "nb.yaml"
    exp.write_text(nb201_yaml(nb201_table, trials=25, extra='constraints: {lat_ms_fpga: "<= 6"}\n'))
    assert main(["run", str(exp), "--out", str(tmp / "out"), "--quiet"]) == 0
    return tmp / "out"


def front_trials(text: str) -> list[int]:
    lines = text.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
    return [int(line.split()[0]) for line in lines[start:]]


def test_pareto_prints_the_pairs_run_wrote(nb_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = pd.read_csv(nb_run / "front.csv")
    code, out, _ = run_cli(capsys, "pareto", str(nb_run))
    assert code == 0
    assert front_trials(out) == written["trial"].tolist()
    assert len(written) >= 3
    assert (written["lat_ms_fpga"] <= 6).all()


def test_pareto_filters_reranks_and_exports(nb_run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out, _ = run_cli(capsys, "pareto", str(nb_run), "--where", "lat_ms_fpga<3", "--format", "csv")
    filtered = pd.read_csv(__import__("io").StringIO(out))
    assert (filtered["lat_ms_fpga"] < 3).all()
    _, out, _ = run_cli(capsys, "pareto", str(nb_run), "--objectives", "accuracy,lat_ms_eyeriss", "--format", "json")
    doc = json.loads(out)
    assert doc["objectives"] == {"accuracy": "maximize", "lat_ms_eyeriss": "minimize"}
    assert all(p["metrics"]["lat_ms_fpga"] <= 6 for p in doc["pairs"])
    plot = tmp_path / "front.png"
    code, _, _ = run_cli(capsys, "pareto", str(nb_run), "--plot", str(plot), "--output", str(tmp_path / "t.txt"))
    assert code == 0 and plot.stat().st_size > 1000 and (tmp_path / "t.txt").read_text().startswith("study nb")


def test_pareto_compares_studies(nb_run: Path, nb201_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "r.yaml"
    exp.write_text(nb201_yaml(nb201_table, name="nb", trials=5, strategy="random", extra='constraints: {lat_ms_fpga: "<= 6"}\n'))
    assert main(["run", str(exp), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "pareto", str(nb_run), str(tmp_path / "r"), "--format", "csv")
    table = pd.read_csv(__import__("io").StringIO(out))
    assert code == 0 and table["trials"].tolist() == [25, 5]
    assert (table["hypervolume"] > 0).all()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["pareto", "/nonexistent/folder"], "no study found"),
        (["hardware", "show", "xc9000"], "unknown device 'xc9000'"),
        (["run", "/nonexistent.yaml"], "experiment file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_bad_experiment_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "bad.yaml"
    exp.write_text(digits_yaml(tmp_path).replace("device: xczu3eg", "device: xczu3eg, devcie: x"))
    code, _, err = run_cli(capsys, "run", str(exp))
    assert code == 2 and err.startswith("codesign: error: hardware.devcie: unknown key")


def test_hardware_list_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    device = tmp_path / "mine.yaml"
    text = (Path(__file__).resolve().parents[2] / "simulators" / "devices" / "xczu3eg.yaml").read_text()
    device.write_text(text.replace("name: xczu3eg", "name: my_board_fpga"))
    code, out, _ = run_cli(capsys, "hardware", "list", "--device-file", str(device))
    assert code == 0 and "xczu9eg" in out and "my_board_fpga" in out and "overlay" in out
    code, out, _ = run_cli(capsys, "hardware", "show", "xczu9eg", "--format", "json")
    assert json.loads(out)["resources"]["dsp"] == 2520


def test_run_verify_and_export_a_deployable_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "dg.yaml"
    exp.write_text(digits_yaml(tmp_path, trials=3))
    code, out, err = run_cli(capsys, "run", str(exp), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 0, err
    assert "chosen pairs are measured on the test split" in out and "accuracy_test" in out
    doc = json.loads((tmp_path / "out" / "front.json").read_text())
    pair = doc["pairs"][0]
    assert pair["fidelity"]["accuracy"] == "measured"  # the searched (validation) number selects
    assert pair["metrics"]["accuracy_search"] == pair["metrics"]["accuracy"]
    assert pair["candidate"]["accelerator"]["template"] == "overlay"
    code, out, err = run_cli(capsys, "export", str(tmp_path / "out"), "--pair", str(pair["trial"]), "--to", str(tmp_path / "pair"))
    assert code == 0, err
    exported = json.loads((tmp_path / "pair" / "pair.json").read_text())
    weighted = [layer for layer in exported["layers"] if layer["kind"] in ("conv", "linear")]
    assert [layer["weight_bits"] for layer in weighted] == pair["candidate"]["weight_bits"]
    model = load_exported(tmp_path / "pair")  # raw load_digits pixels in: the preprocessing is inside
    data = load_dataset("digits", seed=0)
    x, y = data.split("test")
    with torch.no_grad():
        test_acc = int((model(data.preprocess.invert(x)).argmax(1) == y).sum()) / len(y)
    assert test_acc == pytest.approx(pair["metrics"]["accuracy_test"], abs=1e-9)
    code, _, err = run_cli(capsys, "export", str(tmp_path / "out"), "--pair", "999")
    assert code == 2 and "no evaluated trial 999" in err


def test_ctrl_c_saves_and_the_same_command_resumes(tmp_path: Path, nb201_table: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import optuna
    from optuna.trial import TrialState

    exp = tmp_path / "nb.yaml"
    exp.write_text(nb201_yaml(nb201_table, trials=100_000))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "codesign", "run", str(exp), "--out", str(out)]
    # as from a terminal: SIGINT at its default (a parent started in the background may ignore it)
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err_file, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        journal = out / "study.journal"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not journal.exists() or journal.stat().st_size < 20_000):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    err = err_path.read_text()
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    study = optuna.load_study(study_name="nb", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))))
    saved = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(saved) >= 1
    before = {t.number: t.params for t in saved}
    target = len(saved) + 5
    done = subprocess.run([*cmd, "--trials", str(target), "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="nb", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))))
    after = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(after) == target
    assert {t.number: t.params for t in after if t.number in before} == before


def test_the_top_level_help_is_the_same_without_importing_the_commands() -> None:
    from codesign.cli import build_parser

    assert build_parser([]).format_help() == build_parser().format_help()


def test_tables_align_numbers_right_and_show_missing_values() -> None:
    from codesign.cli.format import table

    text = table([{"device": "a", "dsp": 360, "uram": None}, {"device": "bb", "dsp": 12288, "uram": 96}])
    assert text.splitlines() == [
        "device    dsp  uram",
        "------  -----  ----",
        "a         360     -",
        "bb      12288    96",
    ]
    assert table([], ["device"]) == "(no rows)"
    assert table(pd.DataFrame({"x": [1.5, 2.0]}), ["x", "absent"]).splitlines()[2:] == ["1.5", "  2"]


@pytest.mark.parametrize(
    ("args", "forbidden"),
    [
        (["--help"], ("torch", "optuna", "pandas", "numpy", "codesign.cli.run", "codesign.cli.pareto")),
        (["hardware", "list"], ("torch", "optuna", "pandas")),
        (["pareto", "{run}"], ("torch", "pandas", "matplotlib")),
    ],
)
def test_quick_commands_do_not_import_heavy_libraries(nb_run: Path, args: list[str], forbidden: tuple[str, ...]) -> None:
    import subprocess
    import sys

    argv = [a.format(run=nb_run) for a in args]
    script = (
        "import sys\n"
        "from codesign.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"loaded = [m for m in {forbidden!r} if m in sys.modules]\n"
        "print('LOADED', loaded, 'CODE', code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED [] CODE 0"
