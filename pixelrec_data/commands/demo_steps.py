"""`pixelrec demo`: the whole system end to end on the bundled simulator.

Each step is the same `pixelrec` command a user would type, run as a child process, so the demo
exercises the real entry points. A step that finished leaves a marker in WORKDIR/.done/, so a rerun
(after Ctrl-C, a kill or a failed check) continues from the first unfinished step.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.ingest import count_eligible_users
from schemas.errors import InputError
from schemas.protocol import MIN_USER_INTERACTIONS
from pixelrec_data.net.addresses import free_port
from schemas.atomic import atomic_write_text

SCALES = {
    # users, videos: sized so a 2-core machine crawls, builds and validates in minutes
    "tiny": {"users": 400, "videos": 150, "suite": "quick", "epochs": 3},
    "small": {"users": 3000, "videos": 2000, "suite": "quick", "epochs": None},
    "medium": {"users": 12000, "videos": 6000, "suite": "quick", "epochs": None},
}


@dataclass
class DemoPlan:
    workdir: Path
    scale: str
    seed: int = 2020

    @property
    def raw(self):
        return self.workdir / "raw"

    @property
    def data(self):
        return self.workdir / "data"

    @property
    def key_file(self):
        return self.workdir / "keys" / "pixelrec.key"

    @property
    def runs(self):
        return self.workdir / "runs"

    @property
    def release(self):
        return self.data / "pixel8m"


def pixelrec(*args) -> None:
    """Run one `pixelrec` command as a child process, its output and progress shown live."""
    cmd = [sys.executable, "-m", "pixelrec_data.cli", *map(str, args)]
    code = subprocess.call(cmd)
    if code != 0:
        raise InputError(f"`pixelrec {args[0]}` failed (exit {code}); fix the cause above and "
                         "rerun the demo: finished steps are kept")


def simulator_port(plan: DemoPlan) -> int:
    """A port chosen once per workdir: cover URLs recorded by the crawl must stay valid on a rerun."""
    record = plan.workdir / "simulator.json"
    if record.exists():
        return json.loads(record.read_text())["port"]
    port = free_port()
    atomic_write_text(record, json.dumps({"port": port}))
    return port


@contextlib.contextmanager
def running_simulator(plan: DemoPlan, users: int, videos: int, log=print):
    port = simulator_port(plan)
    cmd = [sys.executable, "-m", "pixelrec_data.cli", "simulate", "--port", str(port),
           "--seed", str(plan.seed), "--users", str(users), "--videos", str(videos)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, proc)
        log(f"  simulator serving {base_url} (pid {proc.pid})")
        yield base_url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_up(base_url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = (proc.stderr.read().strip().splitlines() or ["no output"])[-1]
            raise InputError(f"the simulator exited early: {last}")
        try:
            with urllib.request.urlopen(f"{base_url}/robots.txt", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise InputError(f"the simulator did not answer on {base_url} within {timeout:.0f}s")


def demo_key(plan: DemoPlan) -> None:
    """The demo's key is derived from its seed, so that every newcomer's demo builds the same ids
    and reports the same numbers. A real crawl uses a random key (schemas.keys.load_or_create_key)."""
    if plan.key_file.exists():
        return
    plan.key_file.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"pixelrec-demo-key:{plan.seed}".encode()).digest()
    fd = os.open(plan.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)


def subset_sizes(eligible: int) -> list[str]:
    """Nested subsets sized for the crawl: all eligible, then half, then a fifth."""
    if eligible < 20:
        raise InputError(f"the crawl gave only {eligible} users with >= {MIN_USER_INTERACTIONS} "
                         "interactions; "
                         "use a larger --scale")
    return ["pixel8m=all", f"pixel1m={eligible // 2}", f"pixel200k={eligible // 5}"]


class Steps:
    """Runs named steps once each, timing them and leaving a marker when one succeeds."""

    def __init__(self, workdir: Path, log=print):
        self.done_dir = workdir / ".done"
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.timings: dict[str, float] = {}

    def done(self, name: str) -> bool:
        return (self.done_dir / name).exists()

    def run(self, number: int, name: str, func) -> None:
        if self.done(name):
            self.log(f"[{number}] {name}: already done, reused")
            return
        self.log(f"[{number}] {name} ...")
        start = time.perf_counter()
        func()
        seconds = time.perf_counter() - start
        self.timings[name] = seconds
        (self.done_dir / name).write_text(f"{seconds:.1f}\n")
        self.log(f"[{number}] {name}: done in {seconds:.1f}s")


def run_demo(workdir: Path, scale: str = "small", suite: str | None = None, log=print) -> int:
    if scale not in SCALES:
        raise InputError(f"unknown scale '{scale}' (choose from {', '.join(SCALES)})")
    plan = DemoPlan(Path(workdir), scale)
    cfg = SCALES[scale]
    plan.workdir.mkdir(parents=True, exist_ok=True)
    steps = Steps(plan.workdir, log)
    demo_key(plan)
    start = time.perf_counter()
    log(f"PixelRec demo, scale {scale} ({cfg['users']} users, {cfg['videos']} videos), "
        f"workdir {plan.workdir}")

    def build():
        sizes = subset_sizes(count_eligible_users(plan.raw))
        args = ["build-release", "--raw", plan.raw, "--out", plan.data, "--key-file", plan.key_file,
                "--seed", plan.seed]
        for size in sizes:
            args += ["--subset", size]
        pixelrec(*args)

    needs_platform = not (steps.done("crawl") and steps.done("fetch-covers"))
    with (running_simulator(plan, cfg["users"], cfg["videos"], log) if needs_platform
          else contextlib.nullcontext(None)) as base_url:
        steps.run(1, "crawl", lambda: pixelrec(
            "crawl", "--base-url", base_url, "--out", plan.raw, "--key-file", plan.key_file,
            "--seed", plan.seed, "--rate", "0", "--concurrency", "16"))
        steps.run(2, "build-release", build)
        steps.run(3, "fetch-covers", lambda: pixelrec(
            "fetch-covers", "--release", plan.release, "--concurrency", "16",
            "--allow-private-hosts"))  # the simulator's covers are on 127.0.0.1
    steps.run(4, "stats", lambda: pixelrec("stats", "--release", plan.release))
    validate_args = ["validate-baselines", "--release", plan.release, "--suite", suite or cfg["suite"],
                     "--out", plan.runs]
    if cfg["epochs"]:
        validate_args += ["--epochs", cfg["epochs"]]
    steps.run(5, "validate-baselines", lambda: pixelrec(*validate_args))
    log(f"demo finished in {time.perf_counter() - start:.1f}s; report: "
        f"{_latest_report(plan.runs)}")
    return 0


def _latest_report(runs: Path) -> str:
    reports = sorted(runs.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    return str(reports[-1]) if reports else "(none)"
