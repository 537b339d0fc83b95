"""The HTML report in a real browser: headless Chromium screenshots it and the plots are there."""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason="headless Chromium not installed (/usr/bin/chromium; apt-get install chromium)")
def test_html_report_renders_its_plots(small_comparison, tmp_path):
    import matplotlib.image as mpimg

    out, _ = small_comparison
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2600",
                        "--hide-scrollbars", (out / "report.html").resolve().as_uri()],
                       capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 20_000, "Chromium wrote no screenshot"
    img = mpimg.imread(shot)[..., :3]
    assert img.std() > 0.1, "the page is blank"
    # plot lines are saturated colours; text, tables and borders are grey: count coloured pixels
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.3).mean() > 0.002, "no coloured plot pixels: images did not render"
