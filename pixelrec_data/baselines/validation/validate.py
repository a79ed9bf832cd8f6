"""`pixelrec validate-baselines`: run a suite of baselines on a release and check what the paper
establishes (Random < Pop < MF; sequential above non-sequential; PixelNet at least IDNet on the
coldest popularity groups). Suites are data (suites/<name>.yaml, or a path to such a file).

Check kinds: `greater` (the best run of one role beats the best of another on a test metric, less
an optional `tolerance`) and `cold_groups` (Recall@10 pooled over the users of the `groups` coldest
Figure 7 groups; `z` lets the better side trail by z standard errors of the difference, since a few
hundred cold users cannot tell a tie from a small gap, and a negative `z` asks it to lead by that
many; `tolerance` adds a fixed slack).

Image models get their inputs first (prepare_inputs): a PixelNet entry (config key `encoder`)
the release's image cache at its image_size / image_mode (as `pixelrec prepare-images`); a ViNet
entry (config key `features`, named `<encoder>_<layer>`) that feature file, extracted with that
encoder (as `pixelrec extract-features`; random init unless the entry gives `encoder_weights`).
Both are built only when absent or stale; a release without covers skips its image entries.

Claims (kinds `ratio` and `flat_groups`, claims.py) compare runs by ratio. Every check may carry
a `name`; one whose runs did not finish is reported as not run, with the reason.

On a release that is the official data (bands.py) every finished run whose model, encoder and
settings the paper reports also gets a band check around the published figure (published.py); a
suite with `require_encoder_weights: true` (the paper suite) refuses, before training anything,
image models that would run with randomly initialised encoders there. Runs that stop before they
converge are marked (leaderboard.convergence).
"""
from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from schemas.errors import InputError
from schemas.atomic import atomic_write_text

SUITES_DIR = Path(__file__).parent.parent / "suites"


@dataclass
class Row:
    name: str
    model: str
    role: str
    overrides: dict
    status: str = "ok"          # ok | skipped | failed
    reason: str = ""
    run_folder: str = ""
    test: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    best_epoch: int = 0
    config: dict = field(default_factory=dict)       # the resolved config of the run
    entry_weights: str | None = None                 # a ViNet entry's feature-extraction weights
    test_sd: dict = field(default_factory=dict)      # per-user sd of each test metric
    users: int = 0                                   # test users
    epochs_run: int = 0

    def command(self, release: Path, device: str) -> str:
        args = ["pixelrec", "train", "--release", str(release), "--model", self.model,
                "--device", device]
        for key, value in sorted(self.overrides.items()):
            args += ["--set", f"{key}={json.dumps(value) if isinstance(value, (list, dict)) else value}"]
        return shlex.join(args)


def load_suite(name: str) -> dict:
    path = Path(name)
    if not path.suffix:
        path = SUITES_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
        raise InputError(f"unknown suite '{name}' (choose from {known}, or pass a suite .yaml file)")
    try:
        suite = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(suite, dict) or not suite.get("entries"):
        raise InputError(f"{path}: a suite needs a list of 'entries'")
    suite["name"] = path.stem
    return suite


def _available(model: str) -> str:
    """'' when the model can be built, else the reason it cannot."""
    from ..models import model_class
    try:
        model_class(model)
    except InputError as exc:
        return str(exc)
    except ImportError as exc:  # a model whose optional dependency is missing
        return f"model '{model}' cannot be imported ({exc})"
    return ""


def _has_covers(release: Path) -> bool:
    from pixelrec_data.covers.store import has_covers
    return has_covers(release)


def _features_current(release: Path, name: str, weights) -> bool:
    """The feature file exists, lists exactly the release's items in item-number order, and came
    from the same tower weights (random init when `weights` is None)."""
    import pyarrow.parquet as pq
    from ..models.vinet.features import release_item_ids
    folder = release / "features"
    npy, index, meta = folder / f"{name}.npy", folder / f"{name}.index.parquet", folder / f"{name}.json"
    if not npy.exists() or not index.exists() or not meta.exists():
        return False
    made_with = json.loads(meta.read_text()).get("encoder", {}).get("weights")
    if made_with != (str(weights) if weights else None):
        return False
    ids = pq.read_table(index, columns=["item_id"]).column("item_id").to_pylist()
    return ids[1:] == release_item_ids(release)


def prepare_inputs(release: Path, model: str, overrides: dict, entry: dict, device: str,
                   log=print) -> str:
    """Build what an image model reads (image cache, feature file) if absent; '' or a skip reason."""
    from ..config import resolve_config
    config = resolve_config(model, overrides)
    needs_pixels, needs_features = "encoder" in config and "image_size" in config, "features" in config
    if not (needs_pixels or needs_features):
        return ""
    if not _has_covers(release):
        return f"{release}/covers/ holds no covers (run `pixelrec fetch-covers --release {release}`)"
    from pixelrec_data.covers.cache import is_current, prepare_images
    if needs_pixels:
        size, mode = int(config["image_size"]), str(config.get("image_mode", "squash"))
        if not is_current(release, size, mode):
            log(f"  preparing the image cache ({size} px, {mode})")
            _change(release, lambda folder: prepare_images(folder, size=size, mode=mode, workers=1))
    weights = entry.get("encoder_weights")
    if needs_features and not _features_current(release, str(config["features"]), weights):
        from ..models.vinet.features import LAYERS, extract
        encoder, _, layer = str(config["features"]).rpartition("_")
        if layer not in LAYERS or not encoder:
            raise InputError(f"suite entry {entry['name']}: features '{config['features']}' is not "
                             f"<encoder>_<pooled|spatial>, so it cannot be extracted")
        log(f"  extracting {config['features']} features"
            + (f" ({weights})" if weights else " (randomly initialised tower)"))
        _change(release, lambda folder: extract(folder, encoder, layer, weights=weights, device=device))
    return ""


def _change(release: Path, write) -> None:
    """Write an input (image cache, feature file) into the release through the one finishing entry,
    under the release's lock, as `prepare-images` and `extract-features` do."""
    from pipelines.finish import change_release

    change_release(release, "validate-baselines", lambda folder, _overlay: (write(folder), None, None))


def entry_overrides(entry: dict, epochs: int | None) -> dict:
    overrides = dict(entry.get("set") or {})
    if epochs is not None and overrides.get("epochs", 1) != 0 and entry["model"] not in ("random", "pop"):
        overrides["epochs"] = epochs
    return overrides


def apply_encoder_weights(suite: dict, weights: dict[str, str]) -> None:
    """Give every image entry of `suite` whose encoder is a key of `weights` that weights file
    (PixelNet: set.encoder_weights; ViNet: the entry's encoder_weights for feature extraction),
    unless the entry names its own."""
    from .bands import image_encoder
    from ..config import resolve_config
    if not weights:
        return
    for name, path in weights.items():
        if not Path(path).is_file():
            raise InputError(f"--encoder-weights {name}={path}: no such file")
    for entry in suite["entries"]:
        if _available(entry["model"]):
            continue
        kind, encoder, weighted = image_encoder(resolve_config(entry["model"], entry.get("set")),
                                                entry.get("encoder_weights"))
        if kind and not weighted and encoder in weights:
            if kind == "pixelnet":
                entry["set"] = {**(entry.get("set") or {}), "encoder_weights": weights[encoder]}
            else:
                entry["encoder_weights"] = weights[encoder]


def _entry_configs(suite: dict):
    from ..config import resolve_config
    for entry in suite["entries"]:
        if not _available(entry["model"]):
            yield entry, resolve_config(entry["model"], entry.get("set"))


def _read_run(row: Row, folder: Path) -> None:
    metrics = json.loads((folder / "metrics.json").read_text())
    row.run_folder = str(folder)
    row.test = metrics["final"]["test"]
    row.validation = metrics["final"]["validation"]
    row.test_sd = metrics["final"].get("test_sd") or {}
    row.best_epoch = int(metrics.get("best_epoch") or 0)
    row.epochs_run = int(metrics.get("epochs_run") or 0)
    row.users = int(metrics.get("users") or 0)
    row.groups = json.loads((folder / "groups.json").read_text())
    if (folder / "config.yaml").exists():
        row.config = yaml.safe_load((folder / "config.yaml").read_text()) or {}


def run_entries(release: Path, suite: dict, runs_dir: Path, device: str, epochs: int | None,
                log=print) -> list[Row]:
    from ..config import resolve_config
    from ..trainer.train import train
    rows = []
    for entry in suite["entries"]:
        overrides = entry_overrides(entry, epochs)
        row = Row(entry["name"], entry["model"], entry.get("role", ""), overrides,
                  entry_weights=entry.get("encoder_weights"))
        rows.append(row)
        reason = _available(row.model)
        if not reason:
            row.config = resolve_config(row.model, overrides)
            reason = prepare_inputs(release, row.model, overrides, entry, device, log)
        if reason:
            row.status, row.reason = "skipped", reason
            log(f"  {row.name}: skipped ({reason})")
            continue
        log(f"  {row.name}: training ...")
        _read_run(row, train(release, row.model, out=str(runs_dir), overrides=overrides, device=device))
    return rows


def _select(rows: list[Row], selector: str) -> list[Row]:
    named = [r for r in rows if r.name == selector and r.status == "ok"]
    return named or [r for r in rows if r.role == selector and r.status == "ok"]


def _best(rows: list[Row], metric: str) -> Row:
    return max(rows, key=lambda r: r.test.get(metric, float("-inf")))


def _cold_recall(row: Row, groups: int) -> tuple[float, int]:
    """Recall@10 pooled over the users of the `groups` coldest groups, and their number."""
    cold = row.groups["figure7_recall_by_target_popularity"][:groups]
    users = sum(g.get("users", 1) for g in cold)
    hits = sum(g["recall@10"] * g.get("users", 1) for g in cold)
    return hits / max(users, 1), users


def _sampling_margin(z: float, b: tuple[float, int], w: tuple[float, int]) -> float:
    """z standard errors of the difference of two recalls. With one held-out item per user,
    Recall@10 is a mean of 0/1 hits, so each side's variance is p(1 - p) / n."""
    variance = sum(p * (1 - p) / max(n, 1) for p, n in (b, w))
    return z * math.sqrt(variance)


def _not_run(rows: list[Row], selector: str) -> str:
    """Why `selector` (a name or a role) has no finished run."""
    named = [r for r in rows if r.name == selector or r.role == selector]
    if not named:
        return f"no finished run for '{selector}' (the suite has none)"
    return f"no finished run for '{selector}' (" + "; ".join(
        f"{r.name} {r.status}: {r.reason}" if r.reason else f"{r.name} {r.status}" for r in named) + ")"


def _ratio_check(rows: list[Row], check: dict, result: dict) -> dict:
    from .claims import ratio
    pairs, missing = [], []
    for better_name, worse_name in check["pairs"]:
        better, worse = _select(rows, better_name), _select(rows, worse_name)
        if better and worse:
            pairs.append((better[0], worse[0]))
        else:
            missing.append(_not_run(rows, better_name if not better else worse_name))
    if not pairs:
        result["detail"] = "; ".join(missing)
        return result
    ok, detail = ratio(pairs, check)
    result["status"] = "passed" if ok else "failed"
    result["detail"] = detail + (f"; not run: {'; '.join(missing)}" if missing else "")
    return result


def evaluate_checks(rows: list[Row], checks: list[dict]) -> list[dict]:
    results = []
    for check in checks:
        result = {**check, "status": "skipped", "detail": ""}
        result.setdefault("name", check["kind"])
        if check["kind"] == "ratio":
            results.append(_ratio_check(rows, check, result))
            continue
        better, worse = _select(rows, check["better"]), _select(rows, check["worse"])
        if not better or not worse:
            result["detail"] = _not_run(rows, check["better"] if not better else check["worse"])
            results.append(result)
            continue
        tolerance = float(check.get("tolerance", 0.0))
        if check["kind"] == "flat_groups":
            from .claims import flat_groups
            ok, result["detail"] = flat_groups(better[0], worse[0], check)
        elif check["kind"] == "greater":
            metric = check.get("metric", "ndcg@10")
            b, w = _best(better, metric), _best(worse, metric)
            bv, wv = b.test[metric], w.test[metric]
            ok = bv > wv - tolerance
            result["detail"] = f"{b.name} {metric} {bv:.4f} {'>' if ok else '<='} {w.name} {wv:.4f}"
        elif check["kind"] == "cold_groups":
            groups = int(check.get("groups", 3))
            b, w = better[0], worse[0]
            (bv, bn), (wv, wn) = _cold_recall(b, groups), _cold_recall(w, groups)
            # z > 0: "not worse beyond sampling error" (a few hundred cold users cannot tell a
            # tie from a small gap); z = 0 asks for at least a tie; z < 0 for a win by -z
            # standard errors (a significant one at z = -1.645, one-sided 95%).
            margin = tolerance + _sampling_margin(float(check.get("z", 0.0)), (bv, bn), (wv, wn))
            ok = bv >= wv - margin
            slack = f" - {margin:.4f}" if margin > 0 else f" + {-margin:.4f}" if margin < 0 else ""
            result["detail"] = (f"{b.name} recall@10 on the {groups} coldest groups ({bn} users) "
                                f"{bv:.4f} {'>=' if ok else '<'} {w.name} {wv:.4f}{slack}")
        else:
            raise InputError(f"unknown check kind '{check['kind']}'")
        result["status"] = "passed" if ok else "failed"
        results.append(result)
    return results


def validation_id(release: Path, suite: dict, device: str, epochs) -> str:
    text = json.dumps({"suite": suite, "device": device, "epochs": epochs}, sort_keys=True)
    return f"validate-{release.name}-{suite['name']}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def validate(release, suite_name: str = "quick", out="runs", device: str = "cpu",
             epochs: int | None = None, log=print,
             encoder_weights: dict[str, str] | None = None) -> tuple[Path, dict]:
    """Run the suite, write results.json and report.html; returns (folder, results).

    `encoder_weights` maps an encoder name (RN50, ViT-B-32, ...) to a local weights file for every
    image entry of the suite that uses that encoder."""
    from .bands import official_release, paper_bands, require_weights
    from . import leaderboard
    from .report import write_report
    release = Path(release)
    if not (release / "splits").is_dir():
        raise InputError(f"{release}: no splits/ (run `pixelrec build-splits --release {release}`)")
    suite = load_suite(suite_name)
    apply_encoder_weights(suite, encoder_weights or {})
    subset, not_official = official_release(release)
    require_weights(subset, suite, _entry_configs(suite))
    folder = Path(out) / validation_id(release, suite, device, epochs)
    folder.mkdir(parents=True, exist_ok=True)
    log(f"validating {release} with the {suite['name']} suite ({len(suite['entries'])} baselines)")
    rows = run_entries(release, suite, Path(out), device, epochs, log)
    checks = evaluate_checks(rows, suite.get("checks", []))
    bands = paper_bands(subset, rows)
    results = {
        "release": str(release), "suite": suite["name"], "device": device,
        "official": subset.title if subset else None, "official_note": not_official,
        "leaderboard": leaderboard.rows(rows, release, device),
        "checks": checks, "bands": bands,
        "passed": all(c["status"] != "failed" for c in checks + bands),
    }
    atomic_write_text(folder / "results.json", json.dumps(results, indent=1))
    write_report(folder, results, release)
    return folder, results


def leaderboard_text(results: dict) -> str:  # kept here: the command imports it from validate
    from .leaderboard import text
    return text(results)
