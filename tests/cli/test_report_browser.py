"""``codesign report`` opened in a real headless Chromium, with the network switched off: the page loads
without console errors, every figure renders, the front plot holds one point per front pair, and hovering
a pair shows its architecture. ``--png`` draws the same figures as images through the same browser.

Needs Debian's ``chromium`` and ``chromium-driver`` (and selenium, in the test extra): without them the
tests skip, except under ``CI``, where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codesign.cli import main
from codesign.config import load_config
from codesign.experiment import run_experiment
from codesign.results.front import load_front
from tests.helpers import digits_yaml

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
RENDER_TIMEOUT_S = 30


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"no headless browser for the report tests ({', '.join(missing)} missing; apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_browser()
    tmp = tmp_path_factory.mktemp("report-browser")
    (tmp / "exp.yaml").write_text(digits_yaml(tmp, trials=5))
    run_experiment(load_config(tmp / "exp.yaml"), out_dir=tmp / "out")
    return tmp / "out"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory, run: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        # offline: a page that fetched anything (a CDN script, a font) would fail to, and say so in the console
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        )
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def page(run: Path, driver: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path_factory.mktemp("page") / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    driver.get(out.resolve().as_uri())
    WebDriverWait(driver, RENDER_TIMEOUT_S).until(lambda d: d.execute_script("return document.body.dataset.rendered"))
    return out


def test_the_report_loads_offline_without_console_errors(page: Path, driver: Any) -> None:
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
    figures = driver.execute_script("return Array.from(document.querySelectorAll('div.figure')).map(d => d.id)")
    assert {"front", "hypervolume", "verified", "resources", "layers", "roofline"} <= set(figures)
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.figure')).filter(d => d.querySelector('svg.main-svg')).length"
    )
    assert drawn == len(figures) == int(driver.execute_script("return document.body.dataset.rendered"))


def test_the_front_plot_holds_one_point_per_front_pair(page: Path, run: Path, driver: Any) -> None:
    front = load_front(run)
    count = driver.execute_script(
        "const gd = document.getElementById('front'); return gd.data.find(t => t.meta === 'front-searched-0').x.length"
    )
    assert count == len(front) > 0
    trials = driver.execute_script(
        "return document.getElementById('front').data.find(t => t.meta === 'front-searched-0').customdata"
    )
    assert sorted(trials) == sorted(p.trial for p in front.pairs())
    drawn = driver.execute_script(  # the points plotly drew, not only the data it was given
        "const gd = document.getElementById('front');"
        "const i = gd.data.findIndex(t => t.meta === 'front-searched-0');"
        "return gd.querySelectorAll('.scatterlayer .trace')[i].querySelectorAll('.points path').length"
    )
    assert drawn == len(front)


def test_hovering_a_front_pair_shows_its_architecture_and_metrics(page: Path, run: Path, driver: Any) -> None:
    pair = load_front(run).pairs()[0]
    text = driver.execute_script(
        "const gd = document.getElementById('front');"
        "const i = gd.data.findIndex(t => t.meta === 'front-searched-0');"
        "const p = gd.data[i].customdata.indexOf(arguments[0]);"
        "Plotly.Fx.hover(gd, [{curveNumber: i, pointNumber: p}]);"
        "return gd.querySelector('.hoverlayer').textContent",
        pair.trial,
    )
    assert f"trial {pair.trial}" in text and pair.candidate.arch_id in text and "latency_ms" in text


def test_png_writes_every_figure_as_an_image(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, images = tmp_path / "r.html", tmp_path / "png"
    assert main(["report", str(run), "--out", str(out), "--png", str(images)]) == 0
    assert "6 figures written" in capsys.readouterr().out
    for name in ("front", "hypervolume", "verified", "resources", "layers", "roofline"):
        assert (images / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
