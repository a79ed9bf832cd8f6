"""Load releases the Hugging Face way (`load_dataset`) or the polars/DuckDB way (`open_release`).

`load_dataset` is a thin wrapper over `datasets.load_dataset(<release dir>, <config>)`: the release's
README.md card (pipelines.card) declares the configs, so what our wrapper returns is exactly what
plain `datasets` returns for the same folder: memory-mapped Arrow, nothing copied into Python objects.
The wrapper adds the data-root convention, one-line errors that name the command that makes what is
missing, and the covers as an `Image()` column.

`open_release(DIR)` gives lazy polars frames of every table and `.duckdb()`, a connection with one
view per table, for people who prefer SQL or dataframes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from pipelines.lifecycle import require_whole
from schemas.errors import InputError, one_line
from schemas.tables import SPLIT_NAMES

from .covers import store as cover_store
from .integrity import check_release_files

CONFIGS = ("interactions", "sequences", "items")
# table name -> file inside a release
TABLE_FILES = {
    "items": "items.parquet",
    "interactions": "interactions.parquet",
    **{split: f"splits/{split}.parquet" for split in SPLIT_NAMES},
    "covers": cover_store.STATUS_TABLE,
    **{f"sequences_{split}": f"sequences/{split}.parquet" for split in SPLIT_NAMES},
}


def data_root(root=None) -> Path:
    """`root`, else $PIXELREC_DATA, else ./data."""
    return Path(root if root is not None else os.environ.get("PIXELREC_DATA") or "data")


DOWNLOAD_MODES = ("reuse_dataset_if_exists", "reuse_cache_if_exists", "force_redownload")


def pixelrec_home() -> Path:
    """Where load_dataset(download=True) keeps releases: $PIXELREC_HOME, else ~/.cache/pixelrec."""
    return Path(os.environ.get("PIXELREC_HOME") or Path.home() / ".cache" / "pixelrec").expanduser()


def download_release(name: str, root=None, mode: str | None = None) -> Path:
    """Make sure official subset `name` is there (fetched as `pixelrec download` does); return
    the data root that holds it."""
    from .official import get_official

    mode = mode or "reuse_dataset_if_exists"
    if mode not in DOWNLOAD_MODES:
        raise InputError(f"download_mode {mode!r}: expected one of {', '.join(DOWNLOAD_MODES)}")
    if root is None and not os.environ.get("PIXELREC_DATA"):
        root = data_root() if (data_root() / name).is_dir() else pixelrec_home()
    root = data_root(root)
    if mode == "reuse_dataset_if_exists" and (root / name / "manifest.json").is_file():
        return root
    get_official(name, root, overwrite=mode != "reuse_dataset_if_exists",
                 refetch=mode == "force_redownload", log=_log)
    return root


def _log(message: str) -> None:
    from .progress import quiet

    if not quiet():
        print(message, flush=True)


def _download_hint(name: str, root: Path) -> str:
    return f"run `pixelrec download --subset {name} --root {root}`"


def _missing_hint(release: Path, rel_file: str) -> str:
    """The command that makes `rel_file` in a release."""
    if rel_file.startswith(("splits/", "sequences/")) or rel_file == "README.md":
        return f"run `pixelrec build-splits --release {release}`"
    if rel_file.startswith(cover_store.USER_DATA):
        return f"run `pixelrec fetch-covers --release {release}`"
    return _download_hint(release.name, release.parent)


def _require(release: Path, rel_file: str) -> Path:
    path = release / rel_file
    if not path.exists():
        raise InputError(f"{path}: missing; {_missing_hint(release, rel_file)}")
    return path


def release_dir(name: str, root=None) -> Path:
    """The folder of release `name` under `root`; a `name` holding a path separator (or naming an
    existing folder) is the release folder itself, e.g. "data/pixel200k"."""
    name = os.fspath(name)
    if os.sep in name or "/" in name or (root is None and Path(name).is_dir()):
        release = Path(name)
        if not release.is_dir():
            raise InputError(f"{release}: no such release folder; "
                             f"{_download_hint(release.name, release.parent)}")
        return release
    root = data_root(root)
    release = root / name
    if not release.is_dir():
        raise InputError(f"{release}: no release '{name}' in {root}; {_download_hint(name, root)}")
    require_whole(release)
    return release


def read_card(release: Path) -> dict:
    """The YAML header of a release card, checked enough for a one-line error instead of a trace."""
    readme = _require(release, "README.md")
    hint = f"rerun `pixelrec build-splits --release {release}` to rewrite it"
    text = readme.read_text(encoding="utf-8")
    parts = text.split("---", 2) if text.startswith("---") else []
    if len(parts) < 3:
        raise InputError(f"{readme}: dataset card has no YAML header; {hint}")
    try:
        header = yaml.safe_load(parts[1])
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 2}" if where is not None else ""
        raise InputError(f"{readme}: dataset card is not valid YAML{at}; {hint}") from None
    if not isinstance(header, dict) or not isinstance(header.get("configs"), list):
        raise InputError(f"{readme}: dataset card declares no configs; {hint}")
    return header


def _check_split(split, known) -> None:
    """Accept datasets' split syntax ('train', 'test[:10%]', 'train+validation') over known names."""
    if split is None or not isinstance(split, str):
        return
    for part in split.split("+"):
        if part.split("[")[0].strip() not in known:
            raise InputError(f"split '{split}': expected {', '.join(known)} (with optional [slice] or +)")


def _check_card_files(release: Path, header: dict) -> None:
    """Every file the card declares must exist: `datasets` resolves all configs on any load."""
    for entry in header["configs"]:
        files = entry.get("data_files", []) if isinstance(entry, dict) else []
        for item in files if isinstance(files, list) else []:
            rel = item.get("path") if isinstance(item, dict) else None
            if isinstance(rel, str) and not any(c in rel for c in "*?[") and not (release / rel).exists():
                raise InputError(f"{release / rel}: missing (declared by {release / 'README.md'}); "
                                 f"{_missing_hint(release, rel)}")


def _hf_config(release: Path, config: str) -> str:
    if config not in CONFIGS:
        raise InputError(f"config '{config}': expected one of {', '.join(CONFIGS)}")
    if config == "interactions":
        for split in SPLIT_NAMES:
            _require(release, f"splits/{split}.parquet")
        return release.name
    if config == "sequences":
        for split in SPLIT_NAMES:
            _require(release, f"sequences/{split}.parquet")
        return f"{release.name}_sequences"
    _require(release, "items.parquet")
    return f"{release.name}_items"


def load_dataset(name: str = "pixel200k", split=None, *, root=None, config: str = "interactions",
                 streaming: bool = False, with_covers: bool = False, verify="size",
                 download: bool = False, download_mode: str | None = None, **kwargs):
    """Load release `name` under `root` (default $PIXELREC_DATA, else ./data) with `datasets`;
    `name` may also be a release folder's path ("data/pixel200k").

    config: "interactions" (train/validation/test rows: item_id, user_id, timestamp), "sequences"
    (one row per user and split: history_item_ids, history_timestamps, target_item_id,
    target_timestamp) or "items" (one table; with_covers=True adds `cover`, an Image() feature,
    None where the cover is missing or failed). split=None gives a DatasetDict for interactions and
    sequences and the items table itself for items. Extra keyword arguments (cache_dir, num_proc,
    verification_mode, ...) go to datasets.load_dataset. verify: the config's files are checked
    against manifest.json first: "size" (default, one stat per file), "sha256" or True (every
    byte hashed), "none" or False (pixelrec_data.integrity).

    download=True: an official subset that is absent is fetched from its publisher first
    (`pixelrec download --subset NAME`), into `root`, else $PIXELREC_DATA, else $PIXELREC_HOME
    (default ~/.cache/pixelrec). download_mode, as in datasets: "reuse_dataset_if_exists" (the
    default), "reuse_cache_if_exists" (rebuild the release from the files fetched before) or
    "force_redownload" (fetch them again); a mode other than the default implies download=True.
    """
    import datasets

    from .progress import quiet

    if download or download_mode not in (None, "reuse_dataset_if_exists"):
        root = download_release(name, root, download_mode)
    elif root is None and not os.environ.get("PIXELREC_DATA") and not (data_root() / name).is_dir():
        root = pixelrec_home() if (pixelrec_home() / name).is_dir() else None
    release = release_dir(name, root)
    hf_config = _hf_config(release, config)
    header = read_card(release)
    if hf_config not in {c.get("config_name") for c in header["configs"] if isinstance(c, dict)}:
        raise InputError(f"{release / 'README.md'}: dataset card has no config '{hf_config}'; "
                         f"rerun `pixelrec build-splits --release {release}` to rewrite it")
    _check_card_files(release, header)
    check_release_files(release, _config_files(config, with_covers), verify)
    if with_covers and config != "items":
        raise InputError("with_covers=True needs config='items' (covers belong to items)")
    if with_covers and not cover_store.has_covers(release):
        raise InputError(f"{cover_store.files_dir(release)}: no covers; "
                         f"{_missing_hint(release, cover_store.FILES_DIR)}")
    if config == "items" and split in (None, "items"):
        split = "train"  # the items table is the card's lone split
    _check_split(split, ("train",) if config == "items" else SPLIT_NAMES)
    if quiet():
        datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(str(release), hf_config, split=split, streaming=streaming, **kwargs)
    except (datasets.exceptions.DatasetsError, ValueError, KeyError, FileNotFoundError) as exc:
        raise InputError(f"{release}: cannot load config '{hf_config}' ({_one_line(exc)}); rerun "
                         f"`pixelrec build-splits --release {release}` if the card is stale") from None
    if with_covers:
        ds = add_covers(ds, release)
    return ds


def _config_files(config: str, with_covers: bool) -> list[str]:
    if config == "items":
        return ["items.parquet", *([cover_store.STATUS_TABLE] if with_covers else [])]
    folder = "splits" if config == "interactions" else "sequences"
    return [f"{folder}/{split}.parquet" for split in SPLIT_NAMES]


def cover_paths(release: Path, item_ids) -> list:
    """Each item's cover for a datasets Image() column (covers/store.py reads every format): a
    file's absolute path, or {bytes, path} for a cover inside a shard; None where the status table
    says failed or the cover is absent or damaged."""
    out = []
    for cover in cover_store.locate(release, item_ids):
        # a damaged file (truncated download, HTML error page) would raise on access, far from here
        if not cover.usable or not cover_store.looks_like_image(cover.location):
            out.append(None)
        elif cover_store.open_image(cover.location) == cover.location:  # a file
            out.append(cover.location)
        else:
            out.append({"bytes": cover_store.read(cover.location),
                        "path": cover_store.cover_name(cover.item_id)})
    return out


def add_covers(ds, release: Path):
    """Add `cover` (datasets Image(), decoded on access) to an items Dataset or IterableDataset."""
    import datasets
    import pyarrow.parquet as pq

    item_ids = pq.read_table(release / "items.parquet", columns=["item_id"]).column(0).to_pylist()
    if isinstance(ds, datasets.Dataset) and ds.num_rows != len(item_ids):
        raise InputError(f"{release}: items split has {ds.num_rows} rows, items.parquet "
                         f"{len(item_ids)}; pass split=None to load covers")
    paths = cover_paths(release, item_ids)
    if isinstance(ds, datasets.Dataset):
        return ds.add_column("cover", paths).cast_column("cover", datasets.Image())
    # streaming: rows arrive one by one, so the cover comes from a lookup by item id, and the image
    # is opened here (lazily: PIL reads pixels on first access) since typed map output is not decoded
    by_id = dict(zip(item_ids, paths))
    features = datasets.Features.from_arrow_schema(pq.read_schema(release / "items.parquet"))
    features["cover"] = datasets.Image()
    return ds.map(lambda row: {"cover": _image_ref(by_id.get(row["item_id"]))}, features=features)


def _image_ref(cover):
    import io

    from PIL import Image

    if cover is None:
        return None
    return Image.open(cover) if isinstance(cover, str) else Image.open(io.BytesIO(cover["bytes"]))


def _one_line(exc: BaseException) -> str:
    return one_line(exc, 300)


# --- polars / DuckDB -----------------------------------------------------------------------------

class Release:
    """A release folder as lazy polars frames (`items`, `interactions`, `train`, `validation`,
    `test`, `covers`, `sequences_<split>`) and DuckDB views of the same names."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such release folder; "
                             f"{_download_hint(self.path.name, self.path.parent)}")
        require_whole(self.path)
        self.name = self.path.name

    def __repr__(self):
        return f"Release({str(self.path)!r}, tables={self.tables})"

    @property
    def tables(self) -> list[str]:
        """The tables this release has on disk."""
        return [t for t, f in TABLE_FILES.items() if (self.path / f).exists()]

    def scan(self, table: str):
        """A lazy polars frame of `table` (no data read until collect())."""
        import polars as pl

        if table not in TABLE_FILES:
            raise InputError(f"table '{table}': expected one of {', '.join(TABLE_FILES)}")
        return pl.scan_parquet(_require(self.path, TABLE_FILES[table]))

    def __getattr__(self, table):
        if table in TABLE_FILES:
            return self.scan(table)
        raise AttributeError(table)

    def sequences(self, split: str):
        return self.scan(f"sequences_{split}")

    @property
    def manifest(self) -> dict:
        return json.loads(_require(self.path, "manifest.json").read_text(encoding="utf-8"))

    @property
    def stats(self) -> dict:
        return json.loads(_require(self.path, "stats.json").read_text(encoding="utf-8"))

    def duckdb(self, database: str = ":memory:"):
        """A DuckDB connection with one view per table on disk (views read the Parquet in place)."""
        import duckdb

        con = duckdb.connect(database)
        for table in self.tables:
            path = str((self.path / TABLE_FILES[table]).resolve()).replace("'", "''")
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM read_parquet(\'{path}\')')
        return con


def open_release(path, verify="size") -> Release:
    """Open a release folder (data/<release>/) for polars and DuckDB: `.scan(table)` gives a lazy
    polars frame, `.duckdb()` a connection with one view per table (items, interactions, train,
    validation, test, covers, sequences_<split>), `.tables` the tables on disk. Its table files are
    checked against manifest.json first (verify: "size" default, "sha256"/True, "none"/False)."""
    release = Release(path)
    check_release_files(release.path, list(TABLE_FILES.values()), verify)
    return release
