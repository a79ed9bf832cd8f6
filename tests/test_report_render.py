"""report.html renders in a real browser: headless Chromium takes a screenshot of it."""
import shutil
import subprocess

import pytest
from PIL import Image

from pixelrec_data.baselines.validation.report import write_report


def _results():
    groups = {"figure7_recall_by_target_popularity":
              [{"group": i, "recall@10": 0.05 * i} for i in range(10)],
              "figure8": {"target_popularity_mean": 12.0, "top1_popularity_mean": 30.0}}
    row = {"name": "SASRec", "model": "sasrec", "role": "sequential", "status": "ok", "reason": "",
           "best_epoch": 3, "command": "pixelrec train --release r --model sasrec", "groups": groups,
           "test": {"recall@5": 0.1, "recall@10": 0.2, "ndcg@5": 0.05, "ndcg@10": 0.08}}
    return {"suite": "quick", "device": "cpu", "passed": True, "leaderboard": [row],
            "checks": [{"kind": "greater", "status": "passed", "detail": "SASRec > Pop"}]}


def test_report_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("Chromium is absent (Debian package chromium; `make test` installs it)")
    release = tmp_path / "release"
    release.mkdir()
    page = write_report(tmp_path, _results(), release)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1100,1600", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1100, 1600)
    colours = image.resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 20, "the screenshot is blank"
