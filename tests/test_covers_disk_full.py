"""fetch-covers on a disk that fills up (a small tmpfs; skipped where mounting is not permitted): one
line naming the file that could not be written, and a status table that tells the truth about what
is on disk (every 'ok' row's cover there with its size and sha256, every stored cover listed 'ok');
once there is room, a rerun finishes."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from test_downloader import FAST, covers_by_id, pixelrec, write_items
from test_downloader_server import LocalServer, cover_app

COVERS = 40


def noisy_jpeg(seed: int) -> bytes:
    """About 60 KB: noise does not compress, so the covers soon fill a small disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def assert_table_tells_the_truth(release):
    rows = covers_by_id(release)
    assert len(rows) == COVERS
    on_disk = {p.stem for p in (release / "covers").glob("*.jpg")}
    ok = {item for item, row in rows.items() if row["status"] == "ok"}
    assert ok == on_disk, (sorted(ok - on_disk), sorted(on_disk - ok))
    for item in ok:
        data = (release / "covers" / f"{item}.jpg").read_bytes()
        assert len(data) == rows[item]["bytes"]
        assert hashlib.sha256(data).hexdigest() == rows[item]["sha256"]
    return rows


def test_a_full_disk_names_the_file_and_leaves_a_true_status_table(small_disk):
    images = {f"{n}.jpg": noisy_jpeg(n) for n in range(COVERS)}
    assert sum(map(len, images.values())) > 2 * 1200 * 1024  # twice the disk
    release = small_disk / "rel"
    release.mkdir()
    with LocalServer(cover_app(images)) as server:
        write_items(release, {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(COVERS)})
        done = pixelrec("fetch-covers", "--release", release, "--concurrency", "4", *FAST)
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert lines[0].startswith("error: [Errno 28]") and str(release) in lines[0], lines[0]
        assert "covers.parquet lists the" in lines[0], lines[0]
        rows = assert_table_tells_the_truth(release)
        statuses = {row["status"] for row in rows.values()}
        assert statuses <= {"ok", "not_fetched"} and "not_fetched" in statuses, statuses
        assert not list(release.rglob(".*.tmp-*"))  # no temporary left behind

        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        again = pixelrec("fetch-covers", "--release", release, "--concurrency", "4", *FAST)
        assert again.returncode == 0, again.stderr[-2000:]
        rows = assert_table_tells_the_truth(release)
        assert {row["status"] for row in rows.values()} == {"ok"}
        for n in range(COVERS):
            assert (release / "covers" / f"i{n}.jpg").read_bytes() == images[f"{n}.jpg"]
