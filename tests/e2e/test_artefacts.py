"""The HTML report and the 通报 as a reader sees them: rendered to images by the tools a reader's machine uses.

Chromium (headless) screenshots the HTML report; LibreOffice (headless) turns the 通报 into a PDF and pdftoppm
makes its first page a PNG. Both land in ``artefacts/`` (ignored by git) for a person to look at; the README
shows copies kept in ``docs/images/``. ``.ci/run`` installs the three tools (Debian packages ``chromium``,
``libreoffice-writer-nogui``, ``poppler-utils`` and ``fonts-noto-cjk``) when they are missing, so this test always
runs. What it asserts is what can fail: each tool produced its file, the PDF is one A4 portrait page or more
whose text layer holds the bulletin's Chinese title and its page number, the images are real PNGs of a
sensible size.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.reports.build import build_report
from gateway.reports.bulletin import to_docx
from gateway.reports.render import to_html
from gateway.settings import Settings
from outbox.database import Database
from outbox.store import Store
from schemas import deadlines
from schemas.periods import parse_period
from tests.conftest import NOW
from tests.contract.test_reports import AS_OF, seed

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "artefacts"
pytestmark = [pytest.mark.artefacts, pytest.mark.timeout(600)]


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: .ci/run installs it (apt-get install chromium libreoffice-writer-nogui ...)"
    return found


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture(scope="module")
def report(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    path = tmp_path_factory.mktemp("artefacts") / "gateway.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}")
    db = Database(settings.database_url)
    store = Store(db, settings.targets.routes(), deadlines.from_settings(settings.deadlines).due_dates)
    seed(store)
    yield build_report(store, parse_period("2026-10"), as_of=AS_OF, now=NOW, departments=["房监科"])
    db.dispose()


def test_the_html_report_renders_in_chromium(report: dict[str, object], tmp_path: Path) -> None:
    OUT.mkdir(exist_ok=True)
    page = OUT / "report-2026-10.html"
    page.write_bytes(to_html(report))
    shot = OUT / "report-2026-10.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            tool("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    assert png_size(shot) == (1000, 2400)
    assert shot.stat().st_size > 50_000  # a page of tables and a chart, not a blank canvas


def test_the_bulletin_renders_in_libreoffice(report: dict[str, object], tmp_path: Path) -> None:
    OUT.mkdir(exist_ok=True)
    document = OUT / "tongbao-2026-10.docx"
    document.write_bytes(to_docx(report))
    pdf = OUT / "tongbao-2026-10.pdf"
    pdf.unlink(missing_ok=True)
    subprocess.run(
        [
            tool("soffice"),
            f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",  # a profile of its own: parallel runs are safe
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(OUT),
            str(document),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    info = subprocess.run([tool("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "pts (A4)" in info and "Page rot:        0" in info, info
    text = subprocess.run([tool("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True, text=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
    assert "信用信息公示情况通报" in text.stdout
    assert [int(n) for n in re.findall(r"第\s*(\d+)\s*页", text.stdout)] == list(range(1, pages + 1))
    assert "行政审批科：公示率 55.56%" in text.stdout
    fonts = subprocess.run([tool("pdffonts"), str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "CJK" in fonts or "Song" in fonts or "Fang" in fonts, fonts  # Chinese glyphs came from a CJK font
    subprocess.run(
        [tool("pdftoppm"), "-png", "-r", "80", "-f", "1", "-l", "1", str(pdf), str(OUT / "tongbao-2026-10")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [first] = sorted(OUT.glob("tongbao-2026-10-*1.png"))
    width, height = png_size(first)
    assert (width, height) == (662, 936)  # A4 at 80 dpi
