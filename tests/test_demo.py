"""`pixelrec demo` at a tiny scale: every step runs through the real commands and leaves its output;
a rerun reuses every finished step."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.manifest import verify_release

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
FAST = {"embedding_size": 16, "epochs": 2, "stopping_step": 1, "eval_batch_size": 256}


def _demo(workdir: Path, suite: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PIXELREC_QUIET"}  # progress on, but piped
    return subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "demo", "--scale", "tiny",
                           "--workdir", str(workdir), "--suite", str(suite)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    suite = workdir / "suite.yaml"
    suite.write_text(yaml.safe_dump({"entries": [
        {"name": "Random", "model": "random", "role": "random"},
        {"name": "Pop", "model": "pop", "role": "pop"},
        {"name": "SASRec", "model": "sasrec", "role": "sequential", "set": FAST},
        # a tiny tower extracts the features: the same path as RN50's, without its 4 GFLOPs a cover
        {"name": "VBPR", "model": "vbpr", "role": "vinet", "set": {**FAST, "features": "tiny-rn_pooled"}},
        {"name": "PixelNet-SASRec", "model": "pixelnet_sasrec", "role": "pixelnet",
         "set": {**FAST, "epochs": 1, "encoder": "tiny-vit", "image_size": 64, "tune_layers": 1}},
    ], "checks": []}))
    first = _demo(workdir / "work", suite)
    return workdir / "work", suite, first


def test_every_step_leaves_its_output(demo_run):
    work, _, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "\r" not in proc.stdout + proc.stderr  # piped: one line per step, no bar redraws
    assert list((work / "raw" / "interactions").glob("*.parquet"))
    assert json.loads((work / "raw" / "crawl_stats.json").read_text())
    for name in ("pixelrec", "pixel8m", "pixel1m", "pixel200k"):
        verify_release(work / "data" / name)
    release = work / "data" / "pixel8m"
    covers = pq.read_table(release / "covers.parquet").to_pydict()
    assert covers["status"] and set(covers["status"]) == {"ok"}
    assert all((release / "covers" / f"{item}.jpg").exists() for item in covers["item_id"])
    assert json.loads((release / "stats.json").read_text())["users"] > 0
    reports = list((work / "runs").glob("validate-*/report.html"))
    assert len(reports) == 1
    results = json.loads((reports[0].parent / "results.json").read_text())
    assert [r["status"] for r in results["leaderboard"]] == ["ok"] * 5
    for marker in ("[1] crawl", "[2] build-release", "[3] fetch-covers", "[4] stats",
                   "[5] validate-baselines", "report: "):
        assert marker in proc.stdout
    assert "Pop" in proc.stdout and "ndcg" in proc.stdout.lower()


def test_rerun_reuses_finished_steps(demo_run):
    work, suite, _ = demo_run
    again = _demo(work, suite)
    assert again.returncode == 0, again.stderr[-2000:]
    for step in ("crawl", "build-release", "fetch-covers", "stats", "validate-baselines"):
        assert f"{step}: already done, reused" in again.stdout
    assert "simulator serving" not in again.stdout
