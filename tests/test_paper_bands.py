"""Paper bands and claims: band arithmetic by hand, a fake official release (its manifest claims
the published Pixel200K counts, its runs' metrics injected) that passes and one that fails each
check, the report's paper column, and the refusal of random-weight image models on it."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelrec_data.baselines.validation import validate as V
from pixelrec_data.baselines.validation.bands import half_width, official_release, paper_band, sampling_error
from pixelrec_data.baselines.validation.published import published
from toy import chain_sequences, write_release
from schemas.errors import InputError
from schemas.official_subsets import OFFICIAL_SUBSETS

ROOT = Path(__file__).resolve().parent.parent
PIXEL200K = OFFICIAL_SUBSETS["pixel200k"]
TOL = 1e-12  # float64 arithmetic of a handful of operations on numbers below 1


def test_band_arithmetic_by_hand():
    # Recall: sqrt(p (1 - p) / n) = sqrt(0.025 * 0.975 / 200000) = sqrt(1.21875e-7) = 3.4910600e-4
    se = sampling_error("recall@10", 0.025, 200_000)
    assert abs(se - 3.4910600109422e-4) < 1e-15, se
    # half-width = 0.10 * 0.025 + 2 * sqrt(2) * se = 0.0025 + 2.8284271247 * 3.4910600e-4
    #            = 0.0025 + 9.8742088e-4
    half = half_width(0.025, "recall@10", 200_000, 0.10)
    assert abs(half - 0.0034874208829) < 1e-12, half - 0.0034874208829
    # NDCG with a recorded per-user sd 0.1 over 10,000 users: se = 0.1 / 100 = 0.001
    assert abs(sampling_error("ndcg@10", 0.5, 10_000, sd=0.1) - 0.001) < TOL
    # without it, the bound sqrt(mu (1 - mu) / n) = sqrt(0.2 * 0.8 / 100) = 0.04
    assert abs(sampling_error("ndcg@10", 0.2, 100) - 0.04) < TOL
    # Recall ignores a recorded sd: its variance is p (1 - p) exactly
    assert sampling_error("recall@10", 0.2, 100, sd=0.9) == sampling_error("recall@10", 0.2, 100)
    # a band with no relative part and z = 1: sqrt(2) * 0.04
    assert abs(half_width(0.2, "ndcg@10", 100, 0.0, z=1.0) - math.sqrt(2) * 0.04) < TOL


def test_published_rows_carry_table_and_row():
    sasrec = published("pixel200k", "sasrec")
    assert sasrec.metrics == {"recall@5": 0.0164, "ndcg@5": 0.01074, "recall@10": 0.025,
                              "ndcg@10": 0.0135} and sasrec.source == "Table 5, row SASRec"
    vit = published("pixel200k", "pixelnet_sasrec", "ViT-B-32")
    assert vit.metrics["recall@10"] == 0.02583 and vit.source == "Table 6, row ViT SASRec"
    assert published("pixel200k", "pixelnet_sasrec", "tiny-vit") is None
    assert published("pixel1m", "pixelnet_bert4rec", "ViT-B-32").metrics["ndcg@10"] == 0.02272
    assert published("pixel200k", "no_such_model") is None


# -- a fake official release ---------------------------------------------------------------------

def official(folder: Path) -> Path:
    release = write_release(folder, chain_sequences(60, 30, seed=5), 30)
    manifest = {"name": "pixel200k", "build": {"source": "official"}, "counts": PIXEL200K.counts()}
    (release / "manifest.json").write_text(json.dumps(manifest))
    return release


def groups(overall: float, cold: float) -> dict:
    # ten groups of 20,000 users; the 3 coldest at `cold`, the rest chosen so the mean is `overall`
    hot = (10 * overall - 3 * cold) / 7
    rows = [{"group": i, "users": 20_000, "recall@10": cold if i < 3 else hot} for i in range(10)]
    return {"figure7_recall_by_target_popularity": rows,
            "figure8": {"target_popularity_mean": 10.0, "top1_popularity_mean": 20.0}}


def paper_metrics(model: str, encoder=None, scale: float = 1.0) -> dict:
    return {m: v * scale for m, v in published("pixel200k", model, encoder).metrics.items()}


SUITE = {
    "require_encoder_weights": True,
    "entries": [
        {"name": "Pop", "model": "pop", "role": "pop"},
        {"name": "MF", "model": "mf", "role": "non_sequential"},
        {"name": "SASRec", "model": "sasrec", "role": "sequential"},
        {"name": "VBPR", "model": "vbpr", "role": "vinet"},
        {"name": "PixelNet-SASRec", "model": "pixelnet_sasrec", "role": "pixelnet"},
        {"name": "PixelNet-MF", "model": "pixelnet_mf", "role": "pixelnet"},
        {"name": "Tiny", "model": "sasrec", "role": "other", "set": {"embedding_size": 8}},
    ],
    "checks": [
        {"name": "sequential_above_non_sequential", "kind": "greater", "better": "sequential",
         "worse": "non_sequential", "metric": "ndcg@10"},
        {"name": "vinet_below_mf", "kind": "greater", "better": "MF", "worse": "vinet",
         "metric": "recall@10"},
        {"name": "near", "kind": "ratio", "metric": "recall@10", "at_least": 0.9,
         "pairs": [["PixelNet-SASRec", "SASRec"], ["PixelNet-GRU4Rec", "GRU4Rec"]]},
        {"name": "far", "kind": "ratio", "metric": "recall@10", "at_most": 0.75,
         "pairs": [["PixelNet-MF", "MF"]]},
        {"name": "flat", "kind": "flat_groups", "better": "PixelNet-SASRec", "worse": "SASRec",
         "groups": 3, "flat": 0.5, "z": 1.645},
    ],
}

GOOD = {
    "Pop": (paper_metrics("pop"), groups(0.00066, 0.0)),
    "MF": (paper_metrics("mf"), groups(0.01013, 0.002)),
    "SASRec": (paper_metrics("sasrec"), groups(0.025, 0.004)),
    "VBPR": (paper_metrics("vbpr", "RN50"), groups(0.00832, 0.004)),
    "PixelNet-SASRec": (paper_metrics("pixelnet_sasrec", "ViT-B-32"), groups(0.02583, 0.02)),
    "PixelNet-MF": (paper_metrics("pixelnet_mf", "ViT-B-32"), groups(0.00472, 0.004)),
    "Tiny": (paper_metrics("sasrec", scale=0.2), groups(0.005, 0.001)),
}


def run_fake(tmp_path, monkeypatch, injected: dict, suite=SUITE, weights=True):
    """validate() with each run's metrics injected: `train` writes a run folder with them."""
    release = official(tmp_path / "pixel200k")
    names = iter([e["name"] for e in suite["entries"]])

    def fake_train(release, model, out, overrides, device):
        name = next(names)
        test, figure = injected[name]
        folder = Path(out) / f"run-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        from pixelrec_data.baselines.config import resolve_config
        (folder / "config.yaml").write_text(yaml.safe_dump(resolve_config(model, overrides)))
        metrics = {"users": PIXEL200K.users, "best_epoch": 30, "epochs_run": 60,
                   "final": {"test": test, "validation": test}}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "groups.json").write_text(json.dumps(figure))
        return folder

    def skip_inputs(release, model, overrides, entry, device, log=print):
        names_seen.append(entry["name"])
        return ""

    names_seen = []
    monkeypatch.setattr("pixelrec_data.baselines.trainer.train.train", fake_train)
    monkeypatch.setattr(V, "prepare_inputs", skip_inputs)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    files = {}
    if weights:
        for encoder in ("RN50", "ViT-B-32"):
            files[encoder] = str(tmp_path / f"{encoder}.pt")
            Path(files[encoder]).write_bytes(b"weights")
    return V.validate(release, str(path), out=tmp_path / "runs", log=lambda m: None,
                      encoder_weights=files)


def test_official_release_is_recognised_by_source_and_counts(tmp_path):
    release = official(tmp_path / "pixel200k")
    assert official_release(release)[0] is PIXEL200K
    manifest = json.loads((release / "manifest.json").read_text())
    (release / "manifest.json").write_text(json.dumps({**manifest, "build": {"source": "raw"}}))
    subset, note = official_release(release)
    assert subset is None and "built by this toolkit" in note
    (release / "manifest.json").write_text(json.dumps({**manifest, "build": {}}))
    assert "build.source is None, not 'official'" in official_release(release)[1]
    (release / "manifest.json").write_text(json.dumps({**manifest, "counts": {
        **PIXEL200K.counts(), "users": 1000}}))
    subset, note = official_release(release)
    assert subset is None and "200,000" in note


def test_fake_official_release_passes_every_check_and_band(tmp_path, monkeypatch):
    folder, results = run_fake(tmp_path, monkeypatch, GOOD)
    checks = {c["name"]: c for c in results["checks"]}
    assert all(c["status"] == "passed" for c in checks.values()), [c["detail"] for c in checks.values()]
    assert "not run: no finished run for 'PixelNet-GRU4Rec' (the suite has none)" in checks["near"]["detail"]
    bands = {b["model"]: b for b in results["bands"]}
    for name in ("Pop", "MF", "SASRec", "VBPR", "PixelNet-SASRec", "PixelNet-MF"):
        assert bands[name]["status"] == "passed", bands[name]["detail"]
    assert bands["Tiny"]["status"] == "no band" and "embedding_size" in bands["Tiny"]["detail"]
    assert results["passed"] and results["official"] == "Pixel200K"
    page = (folder / "report.html").read_text()
    assert "paper R@10" in page and "0.0250<br><small>[" in page  # SASRec's published 2.500%
    assert "Table 5, row SASRec" in page and "no band: settings differ" in page
    assert "pixelrec extract-features" in page and "--encoder-weights" in page  # VBPR's step


def _scaled(name: str, factor: float):
    return lambda runs: {**runs, name: ({m: v * factor for m, v in runs[name][0].items()}, runs[name][1])}


@pytest.mark.parametrize("change, failing", [
    (_scaled("SASRec", 0.8), "band SASRec"),           # 20% below the paper: outside its band
    (_scaled("VBPR", 1.5), "vinet_below_mf"),          # VBPR 1.5 x the paper's: above MF
    (_scaled("PixelNet-SASRec", 0.5), "near"),         # PixelNet at half its IDNet
    (_scaled("PixelNet-MF", 2.0), "far"),              # PixelNet-MF at 0.93 x MF
    (_scaled("MF", 3.0), "sequential_above_non_sequential"),  # MF above SASRec
], ids=["band", "vinet_below_mf", "near", "far", "sequential"])
def test_fake_official_release_fails_each_check(tmp_path, monkeypatch, change, failing):
    _, results = run_fake(tmp_path, monkeypatch, change(GOOD))
    failed = {c["name"] for c in results["checks"] + results["bands"] if c["status"] == "failed"}
    assert failing in failed, failed
    assert not results["passed"]


def test_flat_groups_fails_when_pixelnet_falls_on_cold_items(tmp_path, monkeypatch):
    injected = dict(GOOD)
    injected["PixelNet-SASRec"] = (GOOD["PixelNet-SASRec"][0], groups(0.02583, 0.002))
    _, results = run_fake(tmp_path, monkeypatch, injected)
    flat = next(c for c in results["checks"] if c["name"] == "flat")
    assert flat["status"] == "failed" and "0.08 < 0.50 (flat)" in flat["detail"], flat["detail"]


def test_random_weight_image_models_are_refused_on_the_official_release(tmp_path, monkeypatch):
    with pytest.raises(InputError) as error:
        run_fake(tmp_path, monkeypatch, GOOD, weights=False)
    message = str(error.value)
    assert "\n" not in message and "--set encoder_weights=PATH" in message
    assert "VBPR (RN50)" in message and "PixelNet-SASRec (ViT-B-32)" in message


def test_paper_suite_refusal_is_one_line_exit_2(tmp_path):
    release = official(tmp_path / "pixel200k")
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "validate-baselines",
                           "--release", str(release), "--suite", "paper", "--out",
                           str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--encoder-weights ENCODER=PATH" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_random_encoder_gets_no_band_and_a_note():
    row = V.Row("PixelNet-SASRec", "pixelnet_sasrec", "pixelnet", {},
                test={"recall@10": 0.0258, "ndcg@10": 0.0129},
                config={"encoder": "ViT-B-32", "image_size": 224, "encoder_weights": None})
    band = paper_band(PIXEL200K, row, 200_000)
    assert band["status"] == "no band" and "randomly initialised" in band["detail"]


def test_report_shows_provenance_or_not_recorded_and_stats_as_stats_prints(tmp_path):
    from pixelrec_data.baselines.validation.report import write_report
    release = tmp_path / "release"
    release.mkdir()
    (release / "stats.json").write_text(json.dumps({
        "users": 2000, "items": 900, "interactions": 13150, "avg_interactions_per_user": 6.575,
        "avg_interactions_per_item": 14.6, "sparsity": 0.992689, "min_session_length": 5,
        "max_session_length": 40, "median_session_length": 6.0, "max_item_interactions": 300}))
    recorded, bare = tmp_path / "run-a", tmp_path / "run-b"
    recorded.mkdir()
    bare.mkdir()
    (recorded / "provenance.json").write_text(json.dumps({
        "release_path": "/data/pixel200k", "manifest_sha256": "ab" * 32, "toolkit_version": "0.4.0",
        "torch_version": "2.9.0", "python_version": "3.11.9", "device": "cpu", "seed": 2020,
        "started_at": "2026-01-01T00:00:00Z", "epoch_wall_s": [1.5, 1.25], "wall_s": 3.0}))
    groups = {"figure7_recall_by_target_popularity": [{"group": 0, "recall@10": 0.1}],
              "figure8": {"target_popularity_mean": 1.0, "top1_popularity_mean": 2.0}}
    metrics = {"recall@5": 0.1, "recall@10": 0.2, "ndcg@5": 0.05, "ndcg@10": 0.08}
    rows = [{"name": name, "model": "mf", "role": "x", "status": "ok", "reason": "", "best_epoch": 3,
             "epochs_run": 9, "test": metrics, "validation": metrics, "run_folder": str(folder),
             "command": "pixelrec train", "groups": groups, "random_encoder": "",
             "convergence": "stopped before converging: best epoch 3 of 9, within its first 5"}
            for name, folder in (("A", recorded), ("B", bare))]
    results = {"suite": "quick", "device": "cpu", "passed": True, "leaderboard": rows, "checks": [],
               "bands": [], "official": None, "official_note": ""}
    page = write_report(tmp_path, results, release).read_text()
    assert "abababababab" in page and "2026-01-01T00:00:00Z" in page and "1.5, 1.2" in page
    assert "not recorded" in page
    assert "99.2689%" in page and "sparsity" in page and "avg interactions / user" in page
    assert page.index("#users") < page.index("#items") < page.index("sparsity")
    assert "valid ndcg@10" in page and "stopped before converging" in page
    assert "No comparison with the paper's figures" in page


def test_docs_table_is_rendered_from_the_published_figures():
    from pixelrec_data.baselines.validation.published import markdown_table
    docs = (ROOT / "docs" / "TRAINER.md").read_text()
    for release in ("pixel200k", "pixel1m", "pixel8m"):
        assert markdown_table(release) in docs, f"docs/TRAINER.md lacks the {release} table"


@pytest.mark.parametrize("best, run, budget, marked", [
    (3, 9, 40, "best epoch 3, early stopping after 9 of 40"),   # the quick suite's old GRU4Rec
    (30, 60, 200, ""),                                          # the protocol's patience 30: fine
    (40, 40, 40, "still rising at epoch 40"),                  # best at the last epoch allowed
    (38, 40, 40, ""),
    (0, 0, 0, ""),                                             # Pop, Random: nothing trained
])
def test_runs_stopped_before_converging_are_marked(best, run, budget, marked):
    from pixelrec_data.baselines.validation.leaderboard import convergence
    row = V.Row("GRU4Rec", "gru4rec", "sequential", {}, best_epoch=best, epochs_run=run,
                config={"epochs": budget, "stopping_step": 5})
    note = convergence(row)
    assert (marked in note) if marked else note == "", note
