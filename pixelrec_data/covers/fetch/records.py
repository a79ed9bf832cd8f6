"""Records of a fetch: per-shard records, the encoding marker and the final status table, every
one written atomically (the covers themselves are stored by the format's writer, covers/formats.py).

In the stats folder of covers/store.py (local: never listed in a manifest):
    shard-NNNNN.parquet   the shard's covers rows (covers schema)
    shard-NNNNN.json      the shard's stats; written last, so it marks the shard done
    format.json           how the stored covers were encoded (original bytes or a resize)
    summary.json          the run's summary
and the status table (covers/store.py): all rows, in items.parquet order.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa

from schemas.errors import InputError
from schemas.atomic import atomic_write_text
from schemas.io import read_table, table_from_rows, write_table
from schemas.tables import COVERS

from .. import store
from ..writing import naming
from .limits import ORIGINAL

FORMAT_FILE = "format.json"
MIXED = "mixed"  # a run switching encoding was cut short: covers of both kinds may be stored


class FetchRecords:
    def __init__(self, release_dir: str | Path):
        self.release_dir = Path(release_dir)
        self.covers_dir = store.files_dir(self.release_dir)
        self.stats_dir = store.stats_dir(self.release_dir)
        for folder in (self.covers_dir, self.stats_dir):
            if folder.is_symlink():  # covers are never written through a planted link
                raise InputError(f"{folder}: a symbolic link; fetch-covers never writes through "
                                 f"links (make it a plain folder)")
        self.stats_dir.mkdir(parents=True, exist_ok=True)

    def remove_stale_temporaries(self, older_than_s: float = 600.0) -> int:
        """Delete temporary cover files left by a killed run (never named *.jpg, so never taken for
        a cover). Only old ones: another machine sharing the folder may be writing the fresh ones."""
        removed, limit = 0, time.time() - older_than_s
        for path in self.covers_dir.glob(".i*.jpg.tmp-*"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # renamed or removed meanwhile
                pass
        return removed

    # --- shard records -------------------------------------------------------------------------
    def shard_paths(self, shard_name: str) -> tuple[Path, Path]:
        return self.stats_dir / f"{shard_name}.parquet", self.stats_dir / f"{shard_name}.json"

    def read_shard(self, shard_name: str) -> tuple[dict | None, list[dict]]:
        """(stats, rows) of a finished shard, or (None, []) when it is missing or unreadable."""
        records, stats_path = self.shard_paths(shard_name)
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
            rows = read_table(records, "covers").to_pylist()  # an older file: attempts null
        except (OSError, ValueError, pa.ArrowException, InputError):
            return None, []
        return stats, rows

    def write_shard(self, shard_name: str, rows: list[dict], stats: dict) -> None:
        records, stats_path = self.shard_paths(shard_name)
        with naming(records):
            write_table(table_from_rows(rows, COVERS), records, "covers")
        self.write_json(stats_path.name, stats)

    def drop_shards_from(self, count: int) -> None:
        """Remove shard files numbered `count` and above (they describe no current shard)."""
        for path in self.stats_dir.glob("shard-*.*"):
            number = path.name[len("shard-"):].split(".", 1)[0]
            if number.isdigit() and int(number) >= count:
                path.unlink(missing_ok=True)

    # --- the encoding of the stored covers --------------------------------------------------------
    def stored_format(self) -> str:
        """The encoding label of the stored covers; folders from before the marker hold originals."""
        try:
            return json.loads((self.stats_dir / FORMAT_FILE).read_text(encoding="utf-8"))["format"]
        except (OSError, ValueError, KeyError, TypeError):
            return ORIGINAL

    def set_stored_format(self, label: str) -> None:
        self.write_json(FORMAT_FILE, {"format": label})

    def write_json(self, name: str, payload: dict) -> Path:
        with naming(self.stats_dir / name):
            return atomic_write_text(self.stats_dir / name,
                                     json.dumps(payload, indent=2, sort_keys=True) + "\n")

    def write_covers_table(self, rows: list[dict]) -> Path:
        path = store.status_table(self.release_dir)
        with naming(path):
            return write_table(table_from_rows(rows, COVERS), path, "covers")
