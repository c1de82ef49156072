"""The report page in a real headless browser (Debian's chromium; .ci/run installs it when missing).

Skips only when no browser is installed. The page is opened from a file with the network
features of the browser off; the screenshot must have the asked size and show something,
and the DOM the browser builds must hold the sections and tables.
"""
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the report extra is not installed (pip install -e '.[report]')")
PIL = pytest.importorskip("PIL.Image", reason="Pillow (a matplotlib dependency) reads the screenshot")

from seqtool.stages.report import run_report  # noqa: E402
from seqtool.stages.train import run_train  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no headless browser installed (.ci/run installs Debian's chromium: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    dev = str(SAMPLE / "ner_dev.jsonl")
    run_train(str(SAMPLE / "ner.jsonl"), output=str(tmp / "m"), task="tagger", dev=dev, epochs=2, embed=8, hidden=8,
              char_filters=8, threads=1, progress=False)
    run_report(str(tmp / "m"), [dev], output=str(tmp / "report.html"), threads=1)
    return tmp / "report.html"


def chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_has_the_size_and_shows_the_page(browser, page, tmp_path, scheme):
    shot = tmp_path / "shot.png"
    dark = ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] if scheme == "dark" else []
    done = chromium(browser, *dark, "--window-size=1280,900", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    with PIL.open(shot) as image:
        assert image.size == (1280, 900)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        background = max(colours)[1]
    assert len(colours) > 200                              # text, charts, the palette: not a blank page
    assert (sum(background) > 600) == (scheme == "light")  # white page, or the dark one


def test_the_browser_dom_has_the_sections_and_tables(browser, page):
    done = chromium(browser, "--dump-dom", page.as_uri())
    dom = done.stdout
    for section in ("training", "eval-1", "model"):
        assert f'data-section="{section}"' in dom, done.stderr[-2000:]
    for table in ("history", "eval1-per-type", "eval1-error-kinds"):
        assert f'<table data-table="{table}">' in dom
    assert dom.count("<svg") >= 8
