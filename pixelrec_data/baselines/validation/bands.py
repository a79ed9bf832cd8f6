"""Bands around the paper's published figures, for releases that are the official data.

A release is the official data when its manifest says `build.source: official` and carries the
published counts of an official subset (schemas/official_subsets.py). On such a release each run
whose model, encoder and settings are the ones the paper reports gets a band per metric:

    half-width = relative x published + z x sqrt(2) x se

- `relative` (10% for ID models, 15% for image models) absorbs what differs between the paper's
  run and ours without being a difference of method: the epoch at which early stopping ends the
  run, the seed, the GPU's kernels, bf16 autocast on CUDA (the paper's code trains in fp32), and
  for image models the image decoding and resizing and the encoder's mixed precision.
- `se` is the sampling error of one run's metric over the release's n test users: Recall@K is a
  mean of 0/1 hits, so se = sqrt(p (1 - p) / n); NDCG@K is a mean of per-user gains in [0, 1], so
  se = sd / sqrt(n) with the per-user sd our evaluation records (metrics.json final.test_sd), or,
  for a run without it, the bound sqrt(mu (1 - mu) / n) (a gain g in [0, 1] has g^2 <= g). The
  paper's number and ours are two independent runs, hence sqrt(2); z = 2 makes the sampling part
  a two-sided ~95% interval.
Only @10 metrics decide the check (the @5 figures move with them and would count the same
evidence twice); every metric's band is shown.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from schemas.errors import InputError
from schemas.official_subsets import OfficialSubset, check_manifest_counts, official_subset

from .published import encoders_reported, published

RELATIVE_ID, RELATIVE_IMAGE, Z = 0.10, 0.15, 2.0
CHECKED_METRICS = ("recall@10", "ndcg@10")
# settings that change how fast or where a run computes, not what it learns: a run that overrides
# only these still has the paper's settings
NEUTRAL_KEYS = {"encoder_weights", "compile", "compile_backend", "eval_precision", "num_workers",
                "eval_batch_size", "deterministic", "test_each_epoch", "amp", "dedup",
                "trunk_cache", "trunk_cache_dtype", "trunk_cache_path", "eval_encode_batch",
                "half_features", "release"}


def official_release(release: Path) -> tuple[OfficialSubset | None, str]:
    """(the official subset `release` is, or None; why it is not, when it bears an official name)."""
    manifest_file = Path(release) / "manifest.json"
    if not manifest_file.exists():
        return None, ""
    manifest = json.loads(manifest_file.read_text())
    subset = official_subset(str(manifest.get("name", "")))
    if subset is None:
        return None, ""
    source = manifest.get("build", {}).get("source")
    if source == "raw":
        return None, (f"{subset.title} by name, but built by this toolkit from a crawl "
                      f"(build.source 'raw'), not the official data")
    if source != "official":
        return None, f"{subset.title} by name, but build.source is {source!r}, not 'official'"
    try:
        check_manifest_counts(manifest, subset, str(release), "strict")
    except InputError as exc:
        return None, str(exc)
    return subset, ""


def sampling_error(metric: str, value: float, users: int, sd: float | None = None) -> float:
    """Standard error of a mean over `users` test users (see the module docstring)."""
    n = max(int(users), 1)
    if sd is not None and not metric.startswith("recall"):
        return sd / math.sqrt(n)
    p = min(max(value, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / n)


def half_width(published_value: float, metric: str, users: int, relative: float, z: float = Z,
               sd: float | None = None) -> float:
    return relative * published_value + z * math.sqrt(2) * sampling_error(
        metric, published_value, users, sd)


def image_encoder(config: dict, entry_weights=None) -> tuple[str | None, str | None, bool]:
    """(kind 'pixelnet' | 'vinet' | None, encoder name, pre-trained weights given)."""
    if "encoder" in config and "image_size" in config:
        return "pixelnet", str(config["encoder"]), bool(config.get("encoder_weights"))
    if "features" in config:
        return "vinet", str(config["features"]).rpartition("_")[0], bool(entry_weights)
    return None, None, True


def paper_band(subset: OfficialSubset, row, users: int) -> dict:
    """The band check of one finished run: status passed | failed | no band, and the figures."""
    kind, encoder, weighted = image_encoder(row.config, row.entry_weights)
    figure = published(subset.name, row.model, encoder)
    result = {"name": f"band {row.name}", "kind": "band", "model": row.name, "status": "no band",
              "detail": ""}
    if figure is None:
        reported = encoders_reported(subset.name, row.model)
        result["detail"] = (f"{row.name}: the paper reports it on {subset.title} only with "
                            f"{' / '.join(reported)}, this run uses {encoder}" if reported else
                            f"{row.name}: not in the paper's tables for {subset.title}")
        return result
    if kind and not weighted:
        result["detail"] = f"{row.name}: encoder {encoder} randomly initialised, so no paper band"
        return result
    changed = sorted(k for k, v in row.overrides.items() if k not in NEUTRAL_KEYS)
    if changed:
        result["detail"] = (f"{row.name}: settings differ from the paper's ({', '.join(changed)}), "
                            f"so no paper band")
        return result
    relative = RELATIVE_IMAGE if kind else RELATIVE_ID
    bands = {}
    for metric, value in figure.metrics.items():
        half = half_width(value, metric, users, relative, sd=(row.test_sd or {}).get(metric))
        bands[metric] = {"paper": value, "low": round(max(value - half, 0.0), 7),
                         "high": round(value + half, 7), "ours": row.test.get(metric)}
    outside = [m for m in CHECKED_METRICS if m in row.test
               and not bands[m]["low"] <= row.test[m] <= bands[m]["high"]]
    result.update(status="failed" if outside else "passed", source=figure.source, bands=bands,
                  relative=relative, z=Z, users=users)
    result["detail"] = "; ".join(
        f"{row.name} {m} {row.test[m]:.5f} {'outside' if m in outside else 'within'} "
        f"[{bands[m]['low']:.5f}, {bands[m]['high']:.5f}] around the paper's {bands[m]['paper']:.5f}"
        for m in CHECKED_METRICS if m in row.test) + f" ({figure.source})"
    return result


def paper_bands(subset: OfficialSubset | None, rows) -> list[dict]:
    """One band check per finished run of an official release (none for other releases)."""
    if subset is None:
        return []
    return [paper_band(subset, row, row.users or subset.users) for row in rows if row.status == "ok"]


def require_weights(subset: OfficialSubset | None, suite: dict, entries_config) -> None:
    """Refuse (one line) image entries without pre-trained weights when the suite asks for them on
    the official data: their numbers could only fail the paper's bands for a reason known in
    advance. `entries_config` yields (entry, resolved config)."""
    if subset is None or not suite.get("require_encoder_weights"):
        return
    missing = []
    for entry, config in entries_config:
        kind, encoder, weighted = image_encoder(config, entry.get("encoder_weights"))
        if kind and not weighted:
            missing.append(f"{entry['name']} ({encoder})")
    if missing:
        raise InputError(
            f"the {suite['name']} suite on the official {subset.title} needs pre-trained encoder "
            f"weights, and {', '.join(missing)} would run randomly initialised: pass "
            f"--encoder-weights ENCODER=PATH (each run's `--set encoder_weights=PATH`; see "
            f"docs/TRAINER.md for the CLIP RN50 / ViT-B-32 files)")


__all__ = ["CHECKED_METRICS", "RELATIVE_ID", "RELATIVE_IMAGE", "Z", "half_width", "image_encoder",
           "official_release", "paper_band", "paper_bands", "require_weights", "sampling_error"]
