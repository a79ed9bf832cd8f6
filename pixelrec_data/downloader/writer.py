"""Writer: cover files, per-shard records and the final covers.parquet, every one written atomically.

Layout (DESIGN: data/<release>/covers/<item_id>.jpg and covers.parquet):
    covers/<item_id>.jpg              one per cover with status 'ok'
    covers/_stats/shard-NNNNN.parquet the shard's covers rows (covers schema)
    covers/_stats/shard-NNNNN.json    the shard's stats; written last, so it marks the shard done
    covers/_stats/format.json         how the stored files were made (original bytes or a resize)
    covers.parquet                    all rows, in items.parquet order
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa

from schemas.errors import InputError
from schemas.io import atomic_write_text, read_table, write_table
from schemas.manifest import file_matches
from schemas.tables import COVERS

from .limits import ORIGINAL

STATS_DIR = "_stats"
FORMAT_FILE = "format.json"
MIXED = "mixed"  # a run switching format was cut short: files of both kinds may be stored


class CoverWriter:
    def __init__(self, release_dir: str | Path):
        self.release_dir = Path(release_dir)
        self.covers_dir = self.release_dir / "covers"
        self.stats_dir = self.covers_dir / STATS_DIR
        for folder in (self.covers_dir, self.stats_dir):
            if folder.is_symlink():  # covers are never written through a planted link
                raise InputError(f"{folder}: a symbolic link; fetch-covers never writes through "
                                 f"links (make it a plain folder)")
        self.stats_dir.mkdir(parents=True, exist_ok=True)

    def cover_path(self, item_id: str) -> Path:
        return self.covers_dir / f"{item_id}.jpg"

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

    def remove_cover(self, item_id: str) -> None:
        self.cover_path(item_id).unlink(missing_ok=True)

    def read_cover(self, item_id: str) -> bytes | None:
        path = self.cover_path(item_id)
        if path.is_symlink():  # a link is no stored cover: it is fetched again (and replaced)
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def stored_cover_matches(self, item_id: str, size: int | None, sha256: str | None) -> bool:
        """True when the stored file (a plain file, not a link) has the recorded size and sha256."""
        path = self.cover_path(item_id)
        return size is not None and not path.is_symlink() and file_matches(path, size, sha256)

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
        write_table(pa.Table.from_pylist(rows, schema=COVERS), records, "covers")
        self.write_json(stats_path.name, stats)

    def drop_shards_from(self, count: int) -> None:
        """Remove shard files numbered `count` and above (they describe no current shard)."""
        for path in self.stats_dir.glob("shard-*.*"):
            number = path.name[len("shard-"):].split(".", 1)[0]
            if number.isdigit() and int(number) >= count:
                path.unlink(missing_ok=True)

    # --- the format of the stored files ---------------------------------------------------------
    def stored_format(self) -> str:
        """The format label of the stored covers; folders from before the marker hold originals."""
        try:
            return json.loads((self.stats_dir / FORMAT_FILE).read_text(encoding="utf-8"))["format"]
        except (OSError, ValueError, KeyError, TypeError):
            return ORIGINAL

    def set_stored_format(self, label: str) -> None:
        self.write_json(FORMAT_FILE, {"format": label})

    def write_json(self, name: str, payload: dict) -> Path:
        return atomic_write_text(self.stats_dir / name,
                                 json.dumps(payload, indent=2, sort_keys=True) + "\n")

    def write_covers_table(self, rows: list[dict]) -> Path:
        return write_table(pa.Table.from_pylist(rows, schema=COVERS),
                           self.release_dir / "covers.parquet", "covers")
