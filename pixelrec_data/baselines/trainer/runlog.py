"""A run folder's train.log and provenance.json.

train.log goes through `logging`: each line carries the time it was logged (ISO 8601, UTC) and is
flushed when written, so `tail -f` follows a run and a Ctrl-C leaves every line logged so far.
Lines logged before the run folder exists (the init-from report) are kept and written, with their
own times, when it appears.

provenance.json says what produced the numbers: the release (path and the sha256 of its
manifest.json), the toolkit, torch and Python versions, the device, the seed, when the run started,
the wall time of every epoch and of the whole run. It is rewritten after every epoch, so a killed
run still has one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from schemas.atomic import atomic_write_text

class _UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class RunLog:
    """A callable `log(message)`: echoes to stdout and appends a timestamped line to train.log."""

    def __init__(self, echo=True):
        self.echo = echo
        self.handler: logging.Handler | None = None
        self.pending: list[logging.LogRecord] = []

    def __call__(self, message: str) -> None:
        if self.echo:
            print(message, flush=True)
        record = logging.makeLogRecord({"name": "pixelrec.train", "levelno": logging.INFO,
                                        "levelname": "INFO", "msg": message})
        if self.handler is None:
            self.pending.append(record)
        else:
            self.handler.handle(record)

    def attach(self, path: Path) -> None:
        """Start writing to `path` (appending: a resumed run continues its log)."""
        self.handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # flushes every record
        self.handler.setFormatter(_UTCFormatter("%(asctime)s %(message)s"))
        for record in self.pending:
            self.handler.handle(record)
        self.pending.clear()

    def close(self) -> None:
        if self.handler is not None:
            self.handler.close()
            self.handler = None


def iso_utc(seconds: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pixelrec")
    except PackageNotFoundError:
        return "unknown"


def manifest_sha256(release: Path) -> str | None:
    path = Path(release) / "manifest.json"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(release: Path, device: torch.device, seed: int, started_at: str,
               epoch_wall_s: list, wall_s: float, world: int = 1) -> dict:
    return {"release_path": str(Path(release).resolve()), "manifest_sha256": manifest_sha256(release),
            "toolkit_version": toolkit_version(), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "device": device_name(device),
            "world_size": world, "seed": seed, "started_at": started_at,
            "epoch_wall_s": [round(s, 3) for s in epoch_wall_s], "wall_s": round(wall_s, 3)}


def write_provenance(folder: Path, record: dict) -> None:
    atomic_write_text(Path(folder) / "provenance.json", json.dumps(record, indent=1) + "\n")
