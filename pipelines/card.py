"""Dataset cards: the README.md whose YAML header lets plain `datasets.load_dataset` read releases.

`write_cards(data_root)` (re)writes one card in the data root (all releases, `pixel200k` the default
config when present, else the smallest release) and one in every release folder (that release only,
so `datasets.load_dataset(<release dir>)` works too). Per release it declares three configs:

- `<name>`           train / validation / test from `<name>/splits/*.parquet` (one interaction a row);
- `<name>_sequences` train / validation / test from `<name>/sequences/*.parquet`, one row per user and
                     split (when they are there: pipelines.finish builds them before the card);
- `<name>_items`     one split `train` from `<name>/items.parquet` (the HF name for a lone split), or,
                     when the covers are stored in the parquet format (covers/store.py), from its
                     shards: the same columns plus `image`, a `datasets.Image` column holding the
                     cover's bytes.

Cards only: this module reads a release and writes README.md files, nothing else.

The header follows the Hub's dataset-card conventions (license, license_name, license_link,
task_categories, pretty_name, size_categories); a release whose manifest says `build.source`
'official' carries the publisher's licence note and citation (schemas.official_sources).

Each config gets `dataset_info` with features and split sizes: `datasets` checks num_examples itself
(NonMatchingSplitsSizesError) on every load, so a card that disagrees with the files is caught.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pixelrec_data.covers import store as cover_store
from schemas.atomic import atomic_write_text
from schemas.io import read_json_or_empty
from schemas.official_sources import CITATION  # the paper's, one place for every card
from schemas.tables import SEQUENCES_DIR, SPLIT_NAMES

from .digests import arrow_bytes_confirmed, confirm_arrow_bytes, known_arrow_bytes

PAPER_TITLE = "An Image Dataset for Benchmarking Recommender Systems with Raw Pixels"
DEFAULT_RELEASE = "pixel200k"
LICENSE_NAME = "pixelrec-research-only"
LICENSE_LINK = "README.md#license"  # the License section of this card
LICENSE_NOTE = ("For non-commercial research use. Titles, descriptions and cover images belong to "
                "their owners on the source platform.")


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
        if (root.parent / "README.md").exists() and card_is_ours_or_absent(root.parent / "README.md"):
            written += write_cards(root.parent, releases_too=False)  # siblings' cards stand
        return written
    releases = [p for p in sorted(root.iterdir()) if is_release(p)] if root.is_dir() else []
    written = [write_release_card(r) for r in releases] if releases_too else []
    infos = {r.name: release_configs(r) for r in releases}
    default = pick_default(infos)
    official = any(is_official(r) for r in releases)  # the strictest terms cover the folder
    header = _header([c for r in releases for c in infos[r.name]], default, in_root=True,
                     official=official)
    body = _root_prose(releases, default, official)
    written.append(atomic_write_text(root / "README.md", _card(header, body)))
    return written


def write_release_card(release: Path, name: str | None = None) -> Path:
    """release/README.md. name: the release's name when the folder is not yet in place (a
    temporary folder of the build)."""
    release = Path(release)
    name = name or release.name
    configs = release_configs(release, name)
    header = _header(configs, name, in_root=False, official=is_official(release),
                     pretty_name=f"PixelRec {name}")
    return atomic_write_text(release / "README.md", _card(header, _release_prose(release, name)))


def is_official(release: Path) -> bool:
    """Built from the publisher's files (manifest build.source 'official')."""
    build = read_json_or_empty(Path(release) / "manifest.json").get("build") or {}
    return isinstance(build, dict) and build.get("source") == "official"


def licence(official: bool) -> dict:
    """name, link, note and citation of the terms a card states."""
    ours = {"name": LICENSE_NAME, "link": LICENSE_LINK, "note": LICENSE_NOTE, "citation": CITATION}
    if not official:
        return ours
    try:  # the publisher's terms, kept with the registry of the official sources
        from schemas import official_sources as publisher
    except ImportError:
        return ours
    return {"name": getattr(publisher, "LICENSE_NAME", LICENSE_NAME),
            "link": getattr(publisher, "LICENSE_LINK", LICENSE_LINK),
            "note": getattr(publisher, "PUBLISHER_LICENSE_NOTE", LICENSE_NOTE),
            "citation": getattr(publisher, "CITATION", CITATION)}


def pick_default(infos: dict[str, list[dict]]) -> str | None:
    with_splits = {name: cfgs for name, cfgs in infos.items() if any(c["name"] == name for c in cfgs)}
    if DEFAULT_RELEASE in with_splits:
        return DEFAULT_RELEASE
    sizes = {name: sum(s["num_examples"] for c in cfgs if c["name"] == name for s in c["splits"])
             for name, cfgs in with_splits.items()}
    return min(sizes, key=lambda n: (sizes[n], n)) if sizes else None


def release_configs(release: Path, name: str | None = None) -> list[dict]:
    """The configs one release offers, as {name, files: {split: relative path}, features, splits}."""
    name = name or release.name
    configs = []
    split_files = {s: f"splits/{s}.parquet" for s in SPLIT_NAMES}
    if all((release / f).exists() for f in split_files.values()):
        configs.append(_config(release, name, name, split_files))
    seq_files = {s: f"{SEQUENCES_DIR}/{s}.parquet" for s in SPLIT_NAMES}
    if all((release / f).exists() for f in seq_files.values()):
        configs.append(_config(release, name, f"{name}_sequences", seq_files))
    shards = cover_store.complete_shards(release, "parquet")
    if shards:
        configs.append(_config(release, name, f"{name}_items",
                               {"train": cover_store.SHARDS_GLOB}, shards))
    elif (release / "items.parquet").exists():
        configs.append(_config(release, name, f"{name}_items", {"train": "items.parquet"}))
    return configs


def _config(release: Path, release_name: str, name: str, files: dict[str, str],
            parts: list[str] | None = None) -> dict:
    """One config; `parts` are the files behind a glob pattern (one split only)."""
    from datasets import Features  # heavy import, only when a card is written

    paths = {split: parts or [rel] for split, rel in files.items()}
    schema = pq.read_schema(release / next(iter(paths.values()))[0])
    features = Features.from_arrow_schema(schema)
    splits = []
    for split, rels in paths.items():
        metas = [(pq.ParquetFile(release / rel), release / rel) for rel in rels]
        splits.append({"name": split,
                       "num_bytes": sum(_arrow_bytes(m, features.arrow_schema, path)
                                        for m, path in metas),
                       "num_examples": sum(m.metadata.num_rows for m, _ in metas)})
    return {"name": name, "release": release_name, "files": files,
            "features": features._to_yaml_list(), "splits": splits,
            "download_size": sum((release / rel).stat().st_size for rels in paths.values() for rel in rels)}


def _arrow_bytes(parquet_file: pq.ParquetFile, schema: pa.Schema, path: Path | None = None) -> int:
    """Arrow bytes of a split as `datasets` records them: batches of one row group, cast.

    A file this process has just written had them counted while it was written: the first row
    group is read to check that count, the rest is taken as counted (a full read otherwise)."""
    if parquet_file.metadata.num_row_groups == 0:
        return 0
    batch = max(parquet_file.metadata.row_group(0).num_rows, 1)
    counted = known_arrow_bytes(path) if path is not None else None
    if counted and len(counted) == parquet_file.metadata.num_row_groups:
        if arrow_bytes_confirmed(path):  # this file's first row group was read for an earlier card
            return sum(counted)
        # row group 0 alone: a reader over the whole file reads ahead into the next groups
        # (cold from disk at full scale: 3 s for one release's six split and sequences files)
        first = next(parquet_file.iter_batches(batch_size=batch, row_groups=[0]))
        if pa.Table.from_batches([first]).cast(schema).nbytes == counted[0]:
            confirm_arrow_bytes(path)
            return sum(counted)
    return sum(pa.Table.from_batches([b]).cast(schema).nbytes
               for b in parquet_file.iter_batches(batch_size=batch))


def _header(configs: list[dict], default: str | None, in_root: bool, official: bool = False,
            pretty_name: str = "PixelRec") -> dict:
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
    terms = licence(official)
    return {
        "license": "other",
        "license_name": terms["name"],
        "license_link": terms["link"],
        "pretty_name": pretty_name,
        # the Hub has no recommendation task: `other`, and the tags say which one
        "task_categories": ["other"],
        "tags": ["recommendation", "recommender-systems", "sequential-recommendation",
                 "collaborative-filtering", "implicit-feedback", "image", "pixelrec"],
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


CARD_MARKER = "# written by pixelrec (pipelines.card); rerun the command that wrote it to refresh"
# cards written by earlier versions carry this line: still ours, so still refreshed
_OLD_MARKERS = ("# written by pixelrec_data.card.write_cards; rerun it to refresh",)


def card_is_ours_or_absent(path: Path) -> bool:
    """True where writing a card at `path` replaces nothing but a card of ours."""
    text = _read_text(path)
    return not Path(path).exists() or any(m in text for m in (CARD_MARKER, *_OLD_MARKERS))


def _card(header: dict, body: str) -> str:
    # libyaml's emitter where PyYAML has it: the same text, a twentieth of the time
    text = yaml.dump(header, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                     allow_unicode=True, width=100)
    return f"---\n{CARD_MARKER}\n{text}---\n\n{body}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


# --- prose ----------------------------------------------------------------------------------------

def _counts(release: Path) -> dict:
    """Counts for the prose: stats.json first, then manifest counts, then Parquet row counts."""
    counts = {}
    for rel, key in (("items.parquet", "items"), ("interactions.parquet", "interactions")):
        if (release / rel).exists():
            counts[key] = pq.ParquetFile(release / rel).metadata.num_rows
    if (release / "splits" / "test.parquet").exists():
        # leave-one-out: exactly one test row per user
        counts["users"] = pq.ParquetFile(release / "splits/test.parquet").metadata.num_rows
    counts.update({k: v for k, v in read_json_or_empty(release / "manifest.json").get("counts", {}).items()
                   if isinstance(v, (int, float))})
    counts.update({k: v for k, v in read_json_or_empty(release / "stats.json").items()
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

From the folder of this card (or give its path; from a hub, the repository id instead):

```python
import os
import datasets
here = os.path.abspath(".")  # datasets wants a named folder: "." alone fails
ds = datasets.load_dataset(here, "{name}")             # train / validation / test
seq = datasets.load_dataset(here, "{name}_sequences")  # one row per user and split
items = datasets.load_dataset(here, "{name}_items", split="train")
```

With the toolkit installed (the same tables, plus covers and polars/DuckDB views):

```python
from pixelrec_data import load_dataset, open_release
ds = load_dataset("{name}", root="{root}")
rel = open_release("{release_path}")
```

`pixelrec pack-covers --release <release folder>` stores the covers inside Parquet shards as a
`datasets.Image` column; the `{name}_items` config then yields each item with its cover as a PIL
image, and the folder can be pushed to a hub as it is.
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
  test row. Derived from the splits when the release is finished.
- `""" + f"{cover_store.FILES_DIR}/<item_id>.jpg`, `{cover_store.STATUS_TABLE}`" + """ \
(status, sha256, size, perceptual hash), `stats.json`,
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


def _license_text(official: bool = False) -> str:
    return f"## License\n\n{licence(official)['note']}\n"


def _citation(official: bool = False) -> list[str]:
    return ["## Citation", "", "```bibtex", licence(official)["citation"], "```", ""]


def _release_prose(release: Path, name: str) -> str:
    manifest = read_json_or_empty(release / "manifest.json")
    counts = _counts(release)
    lines = [f"# PixelRec release `{name}`", "", _about(manifest.get("created_by", "pixelrec")),
             "## Counts", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in counts.items()]
    build = manifest.get("build", {})
    if build:
        lines += ["", "## Build parameters", "", "```json",
                  json.dumps(build, indent=2, sort_keys=True, default=str), "```"]
    official = is_official(release)
    lines += ["", _PROTOCOL, _LAYOUT, _USAGE.format(name=name, root="..", release_path="."),
              _license_text(official), *_citation(official)]
    return "\n".join(lines)


def _root_prose(releases: list[Path], default: str | None, official: bool = False) -> str:
    lines = ["# PixelRec releases", "", _about("pixelrec"), "## Releases", "",
             "| release | items | interactions | users |", "|---|---|---|---|"]
    for r in releases:
        c = _counts(r)
        cells = [_fmt(c[k]) if k in c else "-" for k in ("items", "interactions", "users")]
        lines.append(f"| `{r.name}`{' (default)' if r.name == default else ''} | " + " | ".join(cells) + " |")
    name = default or "pixel200k"
    lines += ["", _PROTOCOL, _USAGE.format(name=name, root=".", release_path=name),
              _license_text(official), *_citation(official)]
    return "\n".join(lines)
