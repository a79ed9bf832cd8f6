"""The release lifecycle through the real `pixelrec` command: kills at every point of a build,
a full disk, user data kept across rebuilds, and the per-release lock."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import crashing
from test_downloader_server import LocalServer, cover_app, make_image
from test_pipeline_build import KEY, community, video, write_raw

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
SUBSETS = ["--subset", "pixel8m=all", "--subset", "pixel1m=10", "--subset", "pixel200k=4"]
NAMES = ("pixelrec", "pixel8m", "pixel1m", "pixel200k")


def pixelrec(*args, env=None, timeout=180, crash=None):
    """`pixelrec *args` in a child process; crash: a point of tests/crashing.py to kill it at."""
    env = {**os.environ, "PIXELREC_QUIET": "1", **(env or {})}
    argv = crashing.command(crash, *args) if crash else [sys.executable, "-m", "pixelrec_data.cli",
                                                         *map(str, args)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)


def make_raw(root: Path, cover_base: str = "http://127.0.0.1:9/img", users: int = 24,
             videos: int = 8) -> Path:
    rows = [video(f"BV{i}", cover_url=f"{cover_base}/{i}.jpg") for i in range(videos)]
    return write_raw(root / "raw", rows, community(users, videos, 6))


def build(tmp: Path, out: Path, *extra, env=None, subsets=SUBSETS, crash=None):
    key = tmp / "key"
    if not key.exists():
        key.write_bytes(KEY)
    return pixelrec("build-release", "--raw", tmp / "raw", "--out", out, "--key-file", key,
                    "--seed", 3, *subsets, *extra, env=env, crash=crash)


def digest(root: Path) -> dict:
    """sha256 of every file under root but the lock files (they record who last held them)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def leftovers(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if ".tmp-" in p.name or p.name.startswith((".pixelrec-work-", ".pixelrec-commit"))
                  or ".old-" in p.name)


def assert_nothing_accepted(out: Path, label: str) -> None:
    """Each release folder either does not exist or is refused by `verify`."""
    for name in NAMES:
        folder = out / name
        if folder.exists():
            done = pixelrec("verify", "--release", folder, "--counts", "off")
            assert done.returncode != 0, f"{label}: verify accepted {folder} ({done.stdout})"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted build: the bytes every interrupted build must end with."""
    tmp = tmp_path_factory.mktemp("reference")
    make_raw(tmp)
    done = build(tmp, tmp / "data")
    assert done.returncode == 0, done.stderr
    return tmp, digest(tmp / "data")


CRASH_POINTS = ["staged:pixelrec", "staged:pixel1m", "staged:pixel200k", "journal",
                "swapped:pixel1m", "swapped:pixelrec"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_at_each_point_leaves_nothing_verify_accepts_and_the_rerun_is_identical(
        tmp_path, reference, point):
    ref_dir, ref_digest = reference
    shutil.copytree(ref_dir / "raw", tmp_path / "raw")
    out = tmp_path / "data"
    killed = build(tmp_path, out, crash=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr)
    assert_nothing_accepted(out, point)
    done = build(tmp_path, out)
    assert done.returncode == 0, done.stderr
    assert digest(out) == ref_digest, point
    assert leftovers(out) == [], point


def assert_whole_or_refused(out: Path, ref_digest: dict, label: str) -> None:
    """Each release folder is absent, refused by `verify`, or whole: the bytes of a finished build
    (an earlier run of the loop may have finished; a later kill must leave its releases intact)."""
    for name in NAMES:
        folder = out / name
        if folder.exists() and pixelrec("verify", "--release", folder, "--counts", "off").returncode == 0:
            got = {k: v for k, v in digest(out).items() if k.startswith(f"{name}/")}
            want = {k: v for k, v in ref_digest.items() if k.startswith(f"{name}/")}
            assert got == want, f"{label}: verify accepted {folder}, which differs from a whole build"


def test_kills_at_several_times_of_a_build(tmp_path, reference):
    """SIGKILL from outside at increasing delays: whatever the moment, no half release is accepted."""
    ref_dir, ref_digest = reference
    shutil.copytree(ref_dir / "raw", tmp_path / "raw")
    out, key = tmp_path / "data", tmp_path / "key"
    key.write_bytes(KEY)
    cmd = [sys.executable, "-m", "pixelrec_data.cli", "build-release", "--raw", tmp_path / "raw",
           "--out", out, "--key-file", key, "--seed", "3", *SUBSETS]
    env = {**os.environ, "PIXELREC_QUIET": "1"}
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        proc = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_whole_or_refused(out, ref_digest, f"killed after {delay}s")
    done = build(tmp_path, out)
    assert done.returncode == 0, done.stderr
    assert digest(out) == ref_digest
    assert leftovers(out) == []


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.7])
def test_a_full_disk_is_one_line_and_leaves_no_release(tmp_path, reference, fraction):
    """The disk fills at several points: DuckDB's work database, its log, the release files."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    ref_dir, _ = reference
    shutil.copytree(ref_dir / "raw", tmp_path / "raw")
    disk = tmp_path / "disk"
    disk.mkdir()
    size = int(sum(p.stat().st_size for p in (ref_dir / "data").rglob("*") if p.is_file()) * fraction)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        done = build(tmp_path, disk / "data")
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr
        assert "space" in lines[0].lower() or "disk" in lines[0].lower(), lines[0]
        assert_nothing_accepted(disk / "data", "disk full")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_rebuild_keeps_fetched_covers_and_a_changed_build_refuses_without_overwrite(tmp_path):
    images = {f"{n}.jpg": make_image(n) for n in range(8)}
    with LocalServer(cover_app(images)) as server:
        make_raw(tmp_path, cover_base=f"{server.url}/img")
        out = tmp_path / "data"
        assert build(tmp_path, out).returncode == 0
        fetched = pixelrec("fetch-covers", "--release", out / "pixel8m", "--rate", "0",
                           "--allow-private-hosts",
                           "--retries", "0", "--timeout", "5")
        assert fetched.returncode == 0, fetched.stderr
    covers = digest(out / "pixel8m" / "covers")
    assert len(covers) >= 8
    (out / "pixel8m" / "features").mkdir()
    (out / "pixel8m" / "features" / "x.npy").write_bytes(b"derived")
    before = (out / "pixel8m" / "manifest.json").read_bytes()

    again = build(tmp_path, out)  # the same build: covers, covers.parquet, features kept
    assert again.returncode == 0, again.stderr
    assert digest(out / "pixel8m" / "covers") == covers
    assert (out / "pixel8m" / "features" / "x.npy").read_bytes() == b"derived"
    assert (out / "pixel8m" / "manifest.json").read_bytes() == before  # covers still listed
    assert pixelrec("verify", "--release", out / "pixel8m").returncode == 0

    shutil.rmtree(tmp_path / "raw")
    make_raw(tmp_path, videos=9)  # a new crawl with one more video: other items
    changed = build(tmp_path, out)
    assert changed.returncode == 2, changed.stderr
    assert "--overwrite" in changed.stderr and "covers" in changed.stderr
    assert digest(out / "pixel8m" / "covers") == covers  # refused: nothing touched
    replaced = build(tmp_path, out, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert not (out / "pixel8m" / "covers").exists()
    assert leftovers(out) == []


HOLDER = """
import sys, time
from pipelines.lifecycle import release_lock
with release_lock(sys.argv[1], "fetch-covers"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_on_a_locked_release_stops_naming_the_holder(tmp_path, reference):
    ref_dir, _ = reference
    shutil.copytree(ref_dir / "raw", tmp_path / "raw")
    out = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / "pixel1m")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = build(tmp_path, out)
        assert done.returncode == 2
        line = done.stderr.strip()
        assert "\n" not in line and "locked by `pixelrec fetch-covers`" in line
        assert f"pid {holder.pid}" in line
        fetch = pixelrec("fetch-covers", "--release", out / "pixel1m")
        assert fetch.returncode == 2 and "locked by" in fetch.stderr
    finally:
        holder.kill()
        holder.wait()
    assert build(tmp_path, out).returncode == 0  # the lock died with its holder
