"""Dataset cards: the README.md whose YAML header lets plain `datasets.load_dataset` read releases.

`write_cards(data_root)` (re)writes one card in the data root (all releases, `pixel200k` the default
config when present, else the smallest release) and one in every release folder (that release only,
so `datasets.load_dataset(<release dir>)` works too). Per release it declares three configs:

- `<name>`           train / validation / test from `<name>/splits/*.parquet` (one interaction a row);
- `<name>_sequences` train / validation / test from `<name>/sequences/*.parquet`, one row per user and
                     split (written before the card by pipelines.sequences.build_sequences);
- `<name>_items`     one split `train` from `<name>/items.parquet` (the HF name for a lone split).

Each config gets `dataset_info` with features and split sizes: `datasets` checks num_examples itself
(NonMatchingSplitsSizesError) on every load, so a card that disagrees with the files is caught.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipelines.digests import known_arrow_bytes
from schemas.io import atomic_write_text
from schemas.tables import SPLIT_NAMES

PAPER_TITLE = "An Image Dataset for Benchmarking Recommender Systems with Raw Pixels"
CITATION = """@article{cheng2023pixelrec,
  title={An Image Dataset for Benchmarking Recommender Systems with Raw Pixels},
  author={Cheng, Yu and Pan, Yunzhu and Zhang, Jiaqi and Ni, Yongxin and Sun, Aixin and Yuan, Fajie},
  journal={arXiv preprint arXiv:2309.06789},
  year={2023}
}"""
DEFAULT_RELEASE = "pixel200k"
SEQUENCES_DIR = "sequences"  # the folder pipelines.sequences writes


def is_release(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and (
        (path / "items.parquet").exists() or (path / "splits").is_dir())


def write_cards(data_root, releases_too: bool = True) -> list[Path]:
    """(Re)write README.md in `data_root` and (unless releases_too=False) in each release below it;
    return the paths written."""
    root = Path(data_root)
    if is_release(root):
        # called on a release folder: its card, and the data root's card when that one is ours
        written = [write_release_card(root)]
        if CARD_MARKER in _read_text(root.parent / "README.md"):
            written += write_cards(root.parent, releases_too=False)  # siblings' cards stand
        return written
    releases = [p for p in sorted(root.iterdir()) if is_release(p)] if root.is_dir() else []
    written = [write_release_card(r) for r in releases] if releases_too else []
    infos = {r.name: release_configs(r) for r in releases}
    default = pick_default(infos)
    header = _header([c for r in releases for c in infos[r.name]], default, in_root=True)
    body = _root_prose(releases, default)
    written.append(atomic_write_text(root / "README.md", _card(header, body)))
    return written


def has_splits(release: Path) -> bool:
    return all((Path(release) / "splits" / f"{s}.parquet").exists() for s in SPLIT_NAMES)


def write_release_card(release: Path) -> Path:
    """release/README.md (its sequences, when wanted, are built first: pipelines.sequences)."""
    release = Path(release)
    configs = release_configs(release)
    header = _header(configs, release.name, in_root=False)
    return atomic_write_text(release / "README.md", _card(header, _release_prose(release)))


def pick_default(infos: dict[str, list[dict]]) -> str | None:
    with_splits = {name: cfgs for name, cfgs in infos.items() if any(c["name"] == name for c in cfgs)}
    if DEFAULT_RELEASE in with_splits:
        return DEFAULT_RELEASE
    sizes = {name: sum(s["num_examples"] for c in cfgs if c["name"] == name for s in c["splits"])
             for name, cfgs in with_splits.items()}
    return min(sizes, key=lambda n: (sizes[n], n)) if sizes else None


def release_configs(release: Path) -> list[dict]:
    """The configs one release offers, as {name, files: {split: relative path}, features, splits}."""
    name = release.name
    configs = []
    split_files = {s: f"splits/{s}.parquet" for s in SPLIT_NAMES}
    if all((release / f).exists() for f in split_files.values()):
        configs.append(_config(release, name, split_files))
    seq_files = {s: f"{SEQUENCES_DIR}/{s}.parquet" for s in SPLIT_NAMES}
    if all((release / f).exists() for f in seq_files.values()):
        configs.append(_config(release, f"{name}_sequences", seq_files))
    if (release / "items.parquet").exists():
        configs.append(_config(release, f"{name}_items", {"train": "items.parquet"}))
    return configs


def _config(release: Path, name: str, files: dict[str, str]) -> dict:
    from datasets import Features  # heavy import, only when a card is written

    schema = pq.read_schema(release / next(iter(files.values())))
    features = Features.from_arrow_schema(schema)
    splits = []
    for split, rel in files.items():
        meta = pq.ParquetFile(release / rel)
        splits.append({"name": split, "num_bytes": _arrow_bytes(meta, features.arrow_schema, release / rel),
                       "num_examples": meta.metadata.num_rows})
    return {"name": name, "release": release.name, "files": files, "features": features._to_yaml_list(), "splits": splits,
            "download_size": sum((release / rel).stat().st_size for rel in files.values())}


def _arrow_bytes(parquet_file: pq.ParquetFile, schema: pa.Schema, path: Path | None = None) -> int:
    """Arrow bytes of a split as `datasets` records them: batches of one row group, cast.

    A file this process has just written had them counted while it was written: the first row
    group is read to check that count, the rest is taken as counted (a full read otherwise)."""
    if parquet_file.metadata.num_row_groups == 0:
        return 0
    batch = max(parquet_file.metadata.row_group(0).num_rows, 1)
    counted = known_arrow_bytes(path) if path is not None else None
    if counted and len(counted) == parquet_file.metadata.num_row_groups:
        first = next(parquet_file.iter_batches(batch_size=batch))
        if pa.Table.from_batches([first]).cast(schema).nbytes == counted[0]:
            return sum(counted)
    return sum(pa.Table.from_batches([b]).cast(schema).nbytes
               for b in parquet_file.iter_batches(batch_size=batch))


def _header(configs: list[dict], default: str | None, in_root: bool) -> dict:
    """The YAML header; data_files are relative to the card's own folder."""
    entries, infos = [], []
    for c in configs:
        prefix = c["release"] + "/" if in_root else ""
        entry = {"config_name": c["name"]}
        if c["name"] == default:
            entry["default"] = True
        entry["data_files"] = [{"split": s, "path": prefix + p} for s, p in c["files"].items()]
        entries.append(entry)
        infos.append({"config_name": c["name"], "features": c["features"], "splits": c["splits"],
                      "download_size": c["download_size"],
                      "dataset_size": sum(s["num_bytes"] for s in c["splits"])})
    return {
        "license": "other",
        "license_name": "pixelrec-research-only",
        "pretty_name": "PixelRec",
        "task_categories": ["image-feature-extraction"],
        "tags": ["recommendation", "recommender-systems", "image", "implicit-feedback", "pixelrec"],
        "size_categories": [_size_category(configs)],
        "configs": entries,
        "dataset_info": infos,
    }


def _size_category(configs: list[dict]) -> str:
    n = max((sum(s["num_examples"] for s in c["splits"]) for c in configs), default=0)
    for limit, label in ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"),
                         (1e6, "100K<n<1M"), (1e7, "1M<n<10M"), (1e8, "10M<n<100M"),
                         (1e9, "100M<n<1B")):
        if n < limit:
            return label
    return "1B<n<10B"


CARD_MARKER = "# written by pixelrec_data.card.write_cards; rerun it to refresh"


def _card(header: dict, body: str) -> str:
    text = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{CARD_MARKER}\n{text}---\n\n{body}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


# --- prose ----------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _counts(release: Path) -> dict:
    """Counts for the prose: stats.json first, then manifest counts, then Parquet row counts."""
    counts = {}
    for rel, key in (("items.parquet", "items"), ("interactions.parquet", "interactions")):
        if (release / rel).exists():
            counts[key] = pq.ParquetFile(release / rel).metadata.num_rows
    if (release / "splits" / "test.parquet").exists():
        # leave-one-out: exactly one test row per user
        counts["users"] = pq.ParquetFile(release / "splits/test.parquet").metadata.num_rows
    counts.update({k: v for k, v in _read_json(release / "manifest.json").get("counts", {}).items()
                   if isinstance(v, (int, float))})
    counts.update({k: v for k, v in _read_json(release / "stats.json").items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return counts


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


_PROTOCOL = """## Protocol (the paper's, section 3)

Leave-one-out per user: the history is ordered by (timestamp, item number); the last interaction is
the test target, the second to last the validation target, the rest is training data. Evaluation
ranks all items (no sampled candidates) with Recall@5/10 and NDCG@5/10; model selection on
validation NDCG@10; sequential models see at most the last 10 items.
"""

_USAGE = """## Loading

```python
import datasets
ds = datasets.load_dataset("{path}", "{name}")             # train / validation / test
seq = datasets.load_dataset("{path}", "{name}_sequences")  # one row per user and split
items = datasets.load_dataset("{path}", "{name}_items", split="train")

from pixelrec_data import load_dataset, open_release       # the same, plus covers and polars/DuckDB
ds = load_dataset("{name}", root="{root}")
```
"""

_LAYOUT = """## Files

- `items.parquet`: item_id, the official item-info columns (view/comment/thumbup/share/coin/favorite/
  barrage numbers, title, tag, description), then cover_url, release_time, channel, duration_s.
- `interactions.parquet`: item_id, user_id, timestamp, source; one row per (user, item), the earliest
  kept, at most 6,500 users per item.
- `splits/{train,validation,test}.parquet`: item_id, user_id, timestamp (leave-one-out).
- `sequences/{train,validation,test}.parquet`: user_id, history_item_ids, history_timestamps,
  target_item_id, target_timestamp. train: the train history but its last row, which is the target;
  validation: all train rows, target the validation row; test: train + validation rows, target the
  test row. Derived from the splits by the card writer.
- `covers/<item_id>.jpg`, `covers.parquet` (status, sha256, size, perceptual hash), `stats.json`,
  `manifest.json` (build parameters, counts, sha256 of every file).

Ids are `i<n>` / `u<n>`, assigned once over the whole build and kept in every subset, so Pixel200K is
a subset of Pixel1M of Pixel8M of PixelRec by id. No platform user id is stored: users were keyed by
a secret keyed hash inside the crawler and then renumbered.
"""


def _about(created_by: str) -> str:
    return (f"Built with the PixelRec toolkit ({created_by}), which re-creates the dataset of "
            f"*{PAPER_TITLE}* (arXiv 2309.06789): micro-video covers and the users who commented on or "
            "sent danmaku to each video. Items are deduplicated by platform id; users with at least 5 "
            "interactions are eligible; PixelRec = everything, Pixel8M = all eligible users, Pixel1M = "
            "1M of them drawn with a seed, Pixel200K = 200K drawn from Pixel1M (sizes are build "
            "parameters; draws nest).\n")


def _license_text() -> str:
    return ("## License\n\nFor non-commercial research use. Titles, descriptions and cover images "
            "belong to their owners on the source platform; this card's `license: other` says so.\n")


def _release_prose(release: Path) -> str:
    manifest = _read_json(release / "manifest.json")
    counts = _counts(release)
    lines = [f"# PixelRec release `{release.name}`", "", _about(manifest.get("created_by", "pixelrec")),
             "## Counts", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in counts.items()]
    build = manifest.get("build", {})
    if build:
        lines += ["", "## Build parameters", "", "```json",
                  json.dumps(build, indent=2, sort_keys=True, default=str), "```"]
    lines += ["", _PROTOCOL, _LAYOUT, _USAGE.format(path=".", name=release.name, root=".."),
              _license_text(), "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def _root_prose(releases: list[Path], default: str | None) -> str:
    lines = ["# PixelRec releases", "", _about("pixelrec"), "## Releases", "",
             "| release | items | interactions | users |", "|---|---|---|---|"]
    for r in releases:
        c = _counts(r)
        cells = [_fmt(c[k]) if k in c else "-" for k in ("items", "interactions", "users")]
        lines.append(f"| `{r.name}`{' (default)' if r.name == default else ''} | " + " | ".join(cells) + " |")
    lines += ["", _PROTOCOL, _USAGE.format(path=".", name=default or "pixel200k", root="."),
              _license_text(), "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)
