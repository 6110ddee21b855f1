"""Files that are not what a command expects (not UTF-8, malformed, a folder where a file belongs, a file where
a folder belongs, an existing file an export would replace) and a ``--points`` that would run for minutes:
each is one line ``codesign: error: ...`` on stderr and exit code 2, and loses nothing already written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from codesign.cli import main
from codesign.results.export import FILES
from simulators.devices import BUILTIN_DIR
from tests.helpers import digits_yaml, nb201_yaml

GARBAGE = b"\xff\xfe\x00garbage"
LAYERS = """layer,bits,omega,size_mb
a,2,0.9,1
a,4,0.5,2
a,8,0.1,4
b,2,0.8,1
b,4,0.4,2
b,8,0.0,4
c,2,0.7,1
c,4,0.3,2
c,8,0.05,4
"""


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Run ``argv``: exit code 2 and one line on stderr holding every one of ``words``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("codesign: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    return err


def device_text(name: str = "my_board") -> str:
    return (BUILTIN_DIR / "xczu3eg.yaml").read_text().replace("name: xczu3eg", f"name: {name}")


# --- device files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (GARBAGE, ("not UTF-8 text", "byte 0xff at position 0")),
        (b"name: [unclosed\n", ("not valid YAML", "line 2")),
        (b'{"name": "x",, "board": 1}', ("not valid YAML", "line 1, column 14")),
        (b"name: a\x00b\n", ("not valid YAML", "special characters")),
        (b"? [1, 2]\n: 3\n", ("mapping key must be a plain value",)),
        (b"a: 2020-13-45\n", ("a value cannot be read", "month must be in 1..12")),
        (b"a: " + b"1" * 5000 + b"\n", ("a value cannot be read", "5000 digits")),
        (b"[" * 5000 + b"]" * 5000, ("not valid YAML",)),
    ],
)
def test_unreadable_device_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: tuple[str, ...]) -> None:
    path = tmp_path / "dev.yaml"
    path.write_bytes(content)
    one_error(capsys, ["hardware", "list", "--device-file", str(path)], str(path), *words)


def test_a_device_file_with_a_byte_order_mark_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dev.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + device_text().encode())
    assert main(["hardware", "show", "my_board", "--device-file", str(path)]) == 0
    assert "board: Ultra96" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        (("max_clock_mhz: 300", "max_clock_mhz: .nan"), ("max_clock_mhz must be a finite number",)),
        (("offchip_gb_per_s: 8.5", "offchip_gb_per_s: .inf"), ("offchip_gb_per_s must be a finite number",)),
        (("lut: 70560", "lut: " + "9" * 400), ("resources.lut must be a non-negative integer of at most 1e+12",)),
    ],
)
def test_device_numbers_must_be_finite_and_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replace: tuple[str, str], words: tuple[str, ...]
) -> None:
    text = device_text()
    assert replace[0] in text
    path = tmp_path / "dev.yaml"
    path.write_text(text.replace(*replace, 1))
    one_error(capsys, ["hardware", "list", "--device-file", str(path)], *words)


def test_device_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error(capsys, ["hardware", "list", "--device-file", str(empty)], "holds no .yaml or .yml file")
    (tmp_path / "mixed" / "sub.yaml").mkdir(parents=True)  # a folder named like a device file is skipped
    (tmp_path / "mixed" / "mine.yaml").write_text(device_text("in_folder"))
    assert main(["hardware", "list", "--device-file", str(tmp_path / "mixed")]) == 0
    assert "in_folder" in capsys.readouterr().out


def test_an_experiment_names_the_bad_device_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dev.yaml").write_bytes(GARBAGE)
    exp = tmp_path / "dg.yaml"
    text = digits_yaml(tmp_path).replace("device: xczu3eg", "device: xczu3eg, device_files: [dev.yaml]")
    exp.write_text(text)
    one_error(capsys, ["run", str(exp), "--out", str(tmp_path / "out")], "hardware.device_files", "not UTF-8 text")


# --- allocate-bits ------------------------------------------------------------------------------------------


def test_allocate_bits_table_that_is_a_folder_or_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_error(capsys, ["allocate-bits", str(tmp_path)], "is a folder", "layer, bits, omega")
    path = tmp_path / "t.csv"
    path.write_bytes(GARBAGE)
    one_error(capsys, ["allocate-bits", str(path)], "not UTF-8 text", "byte 0xff")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ("empty file",)),
        ("\n\n", ("empty file",)),
        ("layer,bits,omega\n", ("no rows",)),
        ("layer;bits;omega\na;4;0.5\n", ("looks ;-separated",)),
        ("layer,bits,omega,omega\na,4,0.5,0.6\n", ("'omega' appear more than once",)),
        ("layer,bits,omega\na,4\n", ("row 2: fewer cells than header columns",)),
        ("layer,bits,omega\na,4,0.5,9\n", ("row 2: more cells than header columns",)),
        ("layer,bits,omega\na,128,0.5\n", ("'128' is not a positive integer of at most 64",)),
        ("layer,bits,omega\na,4,1e-200\na,8,0\n", ("omega is 1e-200", "between 1e-100 and 1e+100")),
        ("layer,bits,omega\na,4,1e300\na,8,0\nb,4,1e300\nb,8,0\n", ("omega is 1e+300",)),
        ("layer,bits,omega\na,4,a\x00b\n", ("row 2, column 'omega'", "is not a number")),
    ],
)
def test_allocate_bits_broken_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: tuple[str, ...]) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    one_error(capsys, ["allocate-bits", str(path)], *words)


def test_allocate_bits_reads_a_byte_order_mark_and_spaced_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbflayer, bits, omega\na,4,0.5\na,8,0.1\n")
    assert main(["allocate-bits", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["bits"] == {"a": 8}


def test_allocate_bits_out_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.csv"
    table.write_text(LAYERS)
    one_error(capsys, ["allocate-bits", str(table), "--out", str(tmp_path)], "--out", "is a folder")
    one_error(capsys, ["allocate-bits", str(table), "--out", str(table / "x.json")], "t.csv is a file, not a folder")
    out = tmp_path / "new" / "deeper" / "result.json"  # missing folders are created
    assert main(["allocate-bits", str(table), "--out", str(out), "--format", "json"]) == 0
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out)


def test_allocate_bits_fix_takes_one_width_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.csv"
    table.write_text(LAYERS)
    one_error(capsys, ["allocate-bits", str(table), "--fix", "a=4,8"], "--fix a=4,8: expected one bit-width")
    one_error(capsys, ["allocate-bits", str(table), "--fix", "a=4", "--fix", "a=8"], "given twice for layer 'a'")


def test_points_are_bounded_and_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.csv"
    table.write_text(LAYERS)
    argv = ["allocate-bits", str(table), "--front", "size_mb", "--format", "json"]
    one_error(capsys, [*argv, "--points", "100000"], "--points must be 0 (exact front) or between 2 and 1000, got 100000")
    assert main([*argv]) == 0
    exact = json.loads(capsys.readouterr().out)["points"]
    start = time.perf_counter()
    assert main([*argv, "--points", "1000"]) == 0  # 3 layers x 3 widths: 27 allocations, so the exact front
    elapsed = time.perf_counter() - start
    assert json.loads(capsys.readouterr().out)["points"] == exact
    assert elapsed < 60  # a thousand solves would take minutes; the exact front takes a handful
    assert main([*argv, "--points", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["points"]) <= 3


# --- hardware import ----------------------------------------------------------------------------------------


def test_hardware_import_table_that_is_a_folder_or_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = str(tmp_path / "models")
    one_error(capsys, ["hardware", "import", str(tmp_path), "--name", "m", "--out", models], "is a folder")
    path = tmp_path / "m.csv"
    path.write_bytes(GARBAGE)
    one_error(capsys, ["hardware", "import", str(path), "--name", "m", "--out", models], "not UTF-8 text")
    path.write_text("layers,latency_ms\n")
    one_error(capsys, ["hardware", "import", str(path), "--name", "m", "--out", models], "no rows")
    path.write_text("")
    one_error(capsys, ["hardware", "import", str(path), "--name", "m", "--out", models], "is empty")


def _measurements(path: Path, energy: bool) -> Path:
    rows = ["layers,latency_ms" + (",energy_mj" if energy else "")]
    for i in range(6):
        layers = json.dumps([{"name": "fc", "kind": "linear", "in_channels": 8 * (i + 1), "out_channels": 10}])
        rows.append('"' + layers.replace('"', '""') + f'",{1.0 + i}' + (f",{0.5 + i}" if energy else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_hardware_import_replaces_a_model_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    argv = ["hardware", "import", "--name", "m", "--out", str(models)]
    assert main([*argv[:2], str(_measurements(tmp_path / "e.csv", True)), *argv[2:]]) == 0
    assert (models / "m" / "energy").is_dir()
    assert main([*argv[:2], str(_measurements(tmp_path / "l.csv", False)), *argv[2:], "--force"]) == 0
    assert not (models / "m" / "energy").exists()  # no predictor of the replaced model is left behind
    assert sorted(p.name for p in models.iterdir()) == ["m"]
    capsys.readouterr()
    (models / "other").mkdir()
    (models / "other" / "keep.txt").write_text("mine")
    one_error(capsys, [*argv[:2], str(tmp_path / "l.csv"), "--name", "other", "--out", str(models), "--force"], "holds no measured model")
    assert (models / "other" / "keep.txt").read_text() == "mine"
    one_error(capsys, [*argv[:2], str(tmp_path / "l.csv"), "--name", "m", "--out", str(tmp_path / "l.csv")], "is a file, not a folder")


@pytest.mark.parametrize(
    ("layers", "words"),
    [
        ("[" * 5000 + "]" * 5000, ("JSON nested too deeply",)),
        ('[{"name": "fc", "kind": "linear", "in_channels": ' + "1" * 5000 + ', "out_channels": 10}]', ("thousands of digits",)),
        ('[{"name": "fc", "kind": "linear", "in_channels": 10000000000, "out_channels": 10}]', ("in_channels must be an integer from 0",)),
        ('[{"name": "fc", "kind": "linear", "in_channels": "8", "out_channels": 10}]', ("in_channels must be an integer",)),
        ('[{"name": "fc", "kind": "linear", "out_channels": 10}]', ("missing field(s) in_channels",)),
    ],
)
def test_hardware_import_odd_layer_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], layers: str, words: tuple[str, ...]) -> None:
    path = _measurements(tmp_path / "m.csv", False)
    lines = path.read_text().splitlines()
    lines[3] = '"' + layers.replace('"', '""') + '",3.0'
    path.write_text("\n".join(lines) + "\n")
    one_error(capsys, ["hardware", "import", str(path), "--name", "m", "--out", str(tmp_path / "models")], "row 3, column 'layers'", *words)


def test_hardware_import_refuses_subnormal_latencies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _measurements(tmp_path / "m.csv", False)
    path.write_text(path.read_text().replace(",4.0\n", ",5e-324\n"))
    one_error(capsys, ["hardware", "import", str(path), "--name", "m", "--out", str(tmp_path / "models")], "row 4", "below 1e-09")


# --- pareto --plot / --output ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, nb201_table: Path) -> Path:
    tmp = tmp_path_factory.mktemp("paths")
    exp = tmp / "nb.yaml"
    exp.write_text(nb201_yaml(nb201_table, trials=5))
    assert main(["run", str(exp), "--out", str(tmp / "out"), "--quiet"]) == 0
    return tmp / "out"


@pytest.mark.parametrize(
    ("plot", "words"),
    [
        ("x.xyz", ("--plot", "unsupported file type '.xyz'", ".png, .pdf, .svg")),
        ("x", ("no file extension",)),
        ("x.pgf", ("unsupported file type '.pgf'",)),
    ],
)
def test_pareto_plot_types_are_checked_before_the_study_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plot: str, words: tuple[str, ...]
) -> None:
    # the study does not exist: the plot path is refused first
    one_error(capsys, ["pareto", str(tmp_path / "none"), "--plot", str(tmp_path / plot)], *words)


def test_pareto_plot_and_output_paths(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    one_error(capsys, ["pareto", str(study), "--plot", str(tmp_path)], "--plot", "is a folder")
    one_error(capsys, ["pareto", str(study), "--output", str(tmp_path)], "--output", "is a folder")
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    one_error(capsys, ["pareto", str(study), "--plot", str(afile / "p.png")], "a.txt is a file, not a folder")
    plot, out = tmp_path / "missing" / "folder" / "front.PNG", tmp_path / "other" / "front.txt"
    assert main(["pareto", str(study), "--plot", str(plot), "--output", str(out)]) == 0  # folders created
    assert plot.stat().st_size > 1000 and out.read_text().startswith("study nb")


# --- export --to ------------------------------------------------------------------------------------------------


def test_export_refuses_to_replace_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "dg.yaml"
    exp.write_text(digits_yaml(tmp_path, trials=2))
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    pair = str(json.loads((tmp_path / "out" / "front.json").read_text())["pairs"][0]["trial"])
    capsys.readouterr()
    target = tmp_path / "pair"
    target.write_text("a file of mine")
    argv = ["export", str(tmp_path / "out"), "--pair", pair, "--to", str(target)]
    one_error(capsys, argv, str(target), "it is a file", "--force")
    assert target.read_text() == "a file of mine"  # untouched
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    one_error(capsys, argv, "already holds an exported pair", "--force")
    assert main([*argv, "--force"]) == 0
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # no staging folder left behind
    one_error(capsys, [*argv[:-1], str(target / "pair.json" / "sub")], "pair.json is a file, not a folder")
    # the default folder of a .journal target lies beside it
    assert main(["export", str(tmp_path / "out" / "study.journal"), "--pair", pair]) == 0
    assert (tmp_path / "out" / "pairs" / pair / "pair.json").is_file()
