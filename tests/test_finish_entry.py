"""Every command that writes into a release goes through the one finishing entry, pipelines.finish.

Statically: no module but the entry takes a release's lock, swaps a folder into place, or writes a
manifest or a card. Then each such command is killed (SIGKILL) at a random step of its finish (or
at a random moment, for those whose finish is only the lock): no release that `verify` accepts may
fail to load, and the next run finishes the commit and leaves no work folder behind.
"""
from __future__ import annotations

import ast
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import crashing
from official_files import covers_zip, official_tables
from test_downloader_server import LocalServer, cover_app, make_image
from test_pipeline_build import KEY
from test_release_lifecycle import make_raw

from pipelines.finish import WORK_PREFIX
from pipelines.lifecycle import JOURNAL
from pipelines.manifest import verify_release
from pixelrec_data.cli import main
from pixelrec_data.covers import store
from schemas.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
# What only the entry (and the modules that define these functions) may call.
ENTRY_ONLY = {"release_lock", "release_locks", "swap_dir", "write_manifest", "refresh_manifest",
              "write_release_card", "write_cards", "_apply_journal"}
DEFINERS = {"pipelines/finish.py", "pipelines/lifecycle.py", "pipelines/card.py",
            "pipelines/manifest.py", "schemas/atomic.py"}
SEED = int(os.environ.get("PIXELREC_KILL_SEED", random.randrange(1 << 30)))


def test_only_the_entry_locks_swaps_or_writes_manifests_and_cards():
    offenders = []
    for package in ("pixelrec_data", "pipelines", "crawler", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in DEFINERS:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in ENTRY_ONLY:
                        offenders.append(f"{rel}:{node.lineno} calls {name}")
    assert offenders == [], offenders


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A data root with pixelrec and pixel8m (covers fetched), a mirror of pixel8m, official CSVs,
    while the cover server runs."""
    from pipelines.build import build_release
    from pipelines.covers import fetch_covers
    from pixelrec_data.covers.fetch import FetchOptions
    from pixelrec_data.mirror import publish

    tmp = tmp_path_factory.mktemp("entry")
    images = {f"{n}.jpg": make_image(n) for n in range(8)}
    with LocalServer(cover_app(images)) as server:
        make_raw(tmp, cover_base=f"{server.url}/img")
        (tmp / "key").write_bytes(KEY)
        build_release(tmp / "raw", tmp / "data", KEY, seed=3, subset_specs=["pixel8m=all"])
        fetch_covers(tmp / "data" / "pixel8m", FetchOptions(rate=0, allow_private_hosts=True))
        publish(tmp / "data", tmp / "mirror", ["pixel8m"])
        inter, info, _ = official_tables()
        official = tmp / "official"
        official.mkdir()
        (official / "Pixel200K.csv").write_bytes(inter)
        (official / "item_info.csv").write_bytes(info)
        (official / "covers.zip").write_bytes(covers_zip())
        yield tmp


def commands(tmp: Path, root: Path) -> dict[str, tuple[list, int]]:
    """name -> (arguments, the steps of its finish here (`tests/crashing.py count`); 0: the lock
    only)."""
    official = tmp / "official"
    return {
        "build-release": (["build-release", "--raw", tmp / "raw", "--out", root, "--key-file",
                           tmp / "key", "--seed", 3, "--subset", "pixel8m=all"], 11),
        "build-splits": (["build-splits", "--release", root / "pixel8m"], 5),
        "stats": (["stats", "--release", root / "pixel8m"], 5),
        "fetch-covers": (["fetch-covers", "--release", root / "pixelrec", "--rate", 0,
                          "--allow-private-hosts", "--format", random.Random(SEED).choice(
                              list(store.FORMATS))], 3),
        "pack-covers": (["pack-covers", "--release", root / "pixel8m"], 4),
        "import-official": (["import-official", "--interactions", official / "Pixel200K.csv",
                             "--items", official / "item_info.csv", "--out", root / "imported"], 6),
        "download-mirror": (["download", "--subset", "pixel8m", "--mirror", tmp / "mirror",
                             "--root", root], 3),
        "download-publisher": (["download", "--subset", "pixel200k", "--root", root, "--from",
                                official, "--counts", "off"], 6),
        "prepare-images": (["prepare-images", "--release", root / "pixel8m", "--size", 16,
                            "--workers", 1], 0),
        "extract-features": (["extract-features", "--release", root / "pixel8m", "--encoder",
                              "tiny-rn", "--size", 16], 0),
    }


def releases(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def assert_accepted_ones_load(root: Path, label: str) -> None:
    from pixelrec_data.loader import open_release

    for folder in releases(root):
        try:
            verify_release(folder)
        except InputError:
            continue  # refused: allowed until the next run finishes it
        release = open_release(folder, verify="sha256")
        for table in release.tables:
            release.scan(table).collect()
        if store.has_covers(folder):
            ids = pq.read_table(folder / "items.parquet", columns=["item_id"]).column(0).to_pylist()
            for cover in store.locate(folder, ids):
                assert not cover.usable or store.read(cover.location), f"{label}: {folder}"


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()
                  if p.name.startswith(WORK_PREFIX) or p.name == JOURNAL or ".tmp-" in p.name)


@pytest.mark.parametrize("name", list(commands(Path("t"), Path("r"))))
def test_a_kill_anywhere_in_a_command_leaves_nothing_half_accepted(base, tmp_path, name,
                                                                   monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(base / "data", root)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))  # the plots' cache, not ~/.cache
    args, steps = commands(base, root)[name]
    rng = random.Random(f"{SEED}:{name}")
    env = {**os.environ, "PIXELREC_QUIET": "1"}
    label = f"{name} (PIXELREC_KILL_SEED={SEED})"
    if steps:
        point = f"step:{rng.randint(1, steps)}"
        killed = subprocess.run(crashing.command(point, *args), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (label, point, killed.stderr[-2000:])
    else:
        proc = subprocess.Popen([sys.executable, "-m", "pixelrec_data.cli", *map(str, args)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert_accepted_ones_load(root, label)
    with pytest.raises(SystemExit) as rerun:  # the next run finishes what the killed one began
        main([str(a) for a in args])
    assert rerun.value.code == 0, label
    assert leftovers(root) == [], label
    for folder in releases(root):
        verify_release(folder)
    assert_accepted_ones_load(root, label)
