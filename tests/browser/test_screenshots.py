"""docs/screenshots.py still makes the README's pictures: the embedded server, the demo, Chromium."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from tests.processes import ROOT
from tests.services import require_chromium


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_the_screenshot_script_writes_small_desktop_and_phone_pngs(tmp_path):
    require_chromium()
    made = subprocess.run(
        [sys.executable, "docs/screenshots.py", "--out", str(tmp_path), "--fill", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    sizes = {name: png_size((tmp_path / name).read_bytes()) for name in ("stream.png", "dashboard.png")}
    assert sizes["stream.png"][0] == 1280
    assert sizes["dashboard.png"][0] == 1280 and sizes["dashboard.png"][1] > 800  # every panel
    assert png_size((tmp_path / "stream-phone.png").read_bytes()) == (780, 1688)  # 390 x 844 at 2x
    for path in tmp_path.glob("*.png"):
        assert path.stat().st_size < 300 * 1024, f"{path.name}: {path.stat().st_size // 1024} KB"


def test_the_readmes_pictures_are_committed_and_small():
    readme = (ROOT / "README.md").read_text()
    for name in ("stream.png", "dashboard.png"):
        assert f"](docs/img/{name})" in readme
        path = ROOT / "docs" / "img" / name
        assert png_size(path.read_bytes())[0] == 1280
        assert path.stat().st_size < 300 * 1024
