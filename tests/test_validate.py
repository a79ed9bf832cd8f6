"""validate-baselines: a suite runs, checks pass on a release with signal, and a deliberately
broken model (one that cannot beat popularity) makes the command fail and say which check."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toy import chain_sequences, write_release
from pixelrec_data.baselines.validation.validate import evaluate_checks, Row, validate

ROOT = Path(__file__).resolve().parent.parent
FAST = {"embedding_size": 16, "learning_rate": 5.0e-3, "epochs": 4, "stopping_step": 2,
        "eval_batch_size": 256}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rel") / "toy"
    return write_release(folder, chain_sequences(120, 60, seed=3), 60)


def _suite(tmp_path, entries, checks):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"entries": entries, "checks": checks}))
    return str(path)


def test_suite_passes_and_writes_report(release, tmp_path):
    suite = _suite(tmp_path, [
        {"name": "Random", "model": "random", "role": "random"},
        {"name": "Pop", "model": "pop", "role": "pop"},
        {"name": "SASRec", "model": "sasrec", "role": "sequential", "set": FAST},
        {"name": "Missing", "model": "no_such_model", "role": "other"},
    ], [{"kind": "greater", "better": "sequential", "worse": "pop", "metric": "ndcg@10"},
        {"kind": "greater", "better": "pop", "worse": "random", "metric": "ndcg@10"},
        {"kind": "greater", "better": "other", "worse": "pop"}])
    folder, results = validate(release, suite, out=tmp_path / "runs", log=lambda m: None)
    statuses = [c["status"] for c in results["checks"]]
    assert statuses == ["passed", "passed", "skipped"]
    assert results["passed"]
    page = (folder / "report.html").read_text()
    assert "Leaderboard" in page and "data:image/png;base64," in page and "pixelrec train" in page
    assert json.loads((folder / "results.json").read_text())["leaderboard"][3]["status"] == "skipped"


def test_broken_model_fails_the_command(release, tmp_path):
    # Random plays the MF role: "Pop < MF" must fail, the command must exit 1 and name the check.
    suite = _suite(tmp_path, [
        {"name": "Pop", "model": "pop", "role": "pop"},
        {"name": "BrokenMF", "model": "random", "role": "non_sequential"},
    ], [{"kind": "greater", "better": "non_sequential", "worse": "pop", "metric": "ndcg@10"}])
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "validate-baselines",
                           "--release", str(release), "--suite", suite, "--out", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "validation failed: BrokenMF ndcg@10" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cold_group_check_compares_coldest_groups():
    def row(name, recalls):
        groups = [{"group": i, "recall@10": r} for i, r in enumerate(recalls)]
        return Row(name, name, name, {}, test={"ndcg@10": 0.1},
                   groups={"figure7_recall_by_target_popularity": groups})
    rows = [row("pix", [0.2, 0.2, 0.1, 0.0]), row("id", [0.0, 0.1, 0.1, 0.9])]
    check = {"kind": "cold_groups", "better": "pix", "worse": "id", "groups": 2}
    assert evaluate_checks(rows, [check])[0]["status"] == "passed"
    check = {"kind": "cold_groups", "better": "id", "worse": "pix", "groups": 2}
    assert evaluate_checks(rows, [check])[0]["status"] == "failed"


def test_cold_group_margin_allows_sampling_noise_but_not_a_broken_model():
    def row(name, recall, users=100):
        groups = [{"group": i, "recall@10": recall, "users": users} for i in range(3)]
        return Row(name, name, name, {}, test={"ndcg@10": 0.1},
                   groups={"figure7_recall_by_target_popularity": groups})
    check = {"kind": "cold_groups", "better": "pix", "worse": "id", "groups": 3, "z": 1.645}
    # 300 cold users: 0.0267 against 0.0300 is one hit in 300 apart, well inside the noise
    near = evaluate_checks([row("pix", 0.0267), row("id", 0.03)], [check])[0]
    assert near["status"] == "passed" and "300 users" in near["detail"]
    # without the margin the same numbers fail, and a model that never hits fails with it
    strict = {**check, "z": 0.0}
    assert evaluate_checks([row("pix", 0.0267), row("id", 0.03)], [strict])[0]["status"] == "failed"
    assert evaluate_checks([row("pix", 0.0), row("id", 0.03)], [check])[0]["status"] == "failed"
    # a negative z asks for a win beyond the noise: 0.05 against 0.03 on 300 users is not one,
    # 0.0166 against 0.0050 on 1,206 users (the medium demo world's figures) is
    win = {**check, "z": -1.645}
    assert evaluate_checks([row("pix", 0.05), row("id", 0.03)], [win])[0]["status"] == "failed"
    won = evaluate_checks([row("pix", 0.0166, 402), row("id", 0.005, 402)], [win])[0]
    assert won["status"] == "passed" and "0.0166 >= id 0.0050 + 0.0069" in won["detail"]


def test_every_suite_names_registered_models_and_loadable_configs():
    from pixelrec_data.baselines.config import resolve_config
    from pixelrec_data.baselines.models import MODELS
    from pixelrec_data.baselines.validation.validate import load_suite

    for name in ("quick", "standard", "paper", "cold"):
        suite = load_suite(name)
        for entry in suite["entries"]:
            assert entry["model"] in MODELS, (name, entry)
            resolve_config(entry["model"], entry.get("set"))
        named = {entry["name"] for entry in suite["entries"]}
        for check in suite["checks"]:
            sides = [s for pair in check["pairs"] for s in pair] if "pairs" in check else \
                [check["better"], check["worse"]]
            for side in sides:
                assert side in named or side in {e.get("role") for e in suite["entries"]}, side


def test_unknown_suite_is_one_line_error(release, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "validate-baselines",
                           "--release", str(release), "--suite", "nope"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown suite 'nope'")


def test_vinet_entry_gets_its_features_and_no_covers_means_skipped(release, tmp_path):
    from PIL import Image

    from pixelrec_data.baselines.validation.validate import prepare_inputs

    vbpr = {"name": "VBPR", "model": "vbpr", "role": "vinet",
            "set": {"features": "tiny-rn_pooled", "embedding_size": 16, "epochs": 1}}
    suite = _suite(tmp_path, [vbpr], [])
    _, results = validate(release, suite, out=tmp_path / "runs", log=lambda m: None)
    row = results["leaderboard"][0]
    assert row["status"] == "skipped" and "covers" in row["reason"]
    covered = write_release(tmp_path / "covered", chain_sequences(40, 20, seed=4), 20)
    (covered / "covers").mkdir()
    for i in range(20):
        Image.new("RGB", (24, 16), (i * 12, 90, 200 - i * 9)).save(covered / "covers" / f"i{i}.jpg")
    _, results = validate(covered, suite, out=tmp_path / "runs", log=lambda m: None)
    assert results["leaderboard"][0]["status"] == "ok"
    features = covered / "features" / "tiny-rn_pooled.npy"
    meta = json.loads((covered / "features" / "tiny-rn_pooled.json").read_text())
    assert meta["encoder"]["name"] == "tiny-rn" and meta["items"] == 20 and meta["blank_covers"] == 0
    stamp = features.stat().st_mtime_ns
    assert prepare_inputs(covered, "vbpr", vbpr["set"], vbpr, "cpu", log=lambda m: None) == ""
    assert features.stat().st_mtime_ns == stamp  # present and current: not extracted again
