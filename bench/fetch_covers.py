"""Benchmark: fetch-covers against img2dataset (or a bare client's floor), on one local server.

A server process serves N distinct JPEG covers (480x270, rendered scenes with photo-like noise,
about 40 KB each; rendered once into a cache folder) from memory. Then, in the same run and
alternating, each a subprocess:
  floor       - a bare aiohttp loop (GET + read + Pillow decode, --concurrency in flight);
  resize      - `pixelrec fetch-covers --resize S --resize-mode M`;
  img2dataset - `img2dataset --output_format files --image_size S --resize_mode M
                --processes_count 2 --thread_count <--img2dataset-threads>` from its own venv
                (bench/.venv-img2dataset, git-ignored: `python3 -m venv bench/.venv-img2dataset &&
                bench/.venv-img2dataset/bin/pip install img2dataset==1.47.0`); left out when
                that venv is missing, and the ratios are then taken against the floor;
  default     - `pixelrec fetch-covers` (original bytes kept, each image decoded once, phash);
each --runs times. For each: images/s over the whole run's wall time, CPU seconds (user + system of
the process and every child it waited for, from getrusage), images per CPU-second, and the peak RSS
summed over the process tree (sampled from /proc every 20 ms). Medians are reported, with the
ratios `pixelrec --resize / img2dataset` of images per CPU-second and of images/s, and the load
average before and after (the machine may be shared: only ratios within one run compare). With
--profile yes (needs py-spy beside the interpreter), one more default run under py-spy prints
where the time goes. Outputs go to --workdir, by default the tmpfs /dev/shm: on ext4, a run that
creates files right after the previous run deleted as many spends 15% of its CPU in the kernel's
inode allocator (perf: recently_deleted), which measures the file system, not the tools.

    .venv/bin/python bench/fetch_covers.py [--covers 3000] [--size 224] [--mode keep_ratio]
        [--runs 3] [--concurrency 16] [--img2dataset-threads 64] [--profile no]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pixelrec_data.covers.store import stats_dir  # noqa: E402
from pixelrec_data.net.addresses import free_port  # noqa: E402
PIXELREC = [sys.executable, "-c", "from pixelrec_data.cli import main; main()"]
ENV = dict(os.environ, PIXELREC_QUIET="1", PYTHONPATH=str(ROOT), NO_ALBUMENTATIONS_UPDATE="1")
IMG2DATASET_VERSION = "1.47.0"


# --- covers and the server --------------------------------------------------------------------
def render_covers(folder: Path, count: int) -> Path:
    """N distinct 480x270 JPEGs under folder/ (kept between runs: rendering takes a while)."""
    import numpy as np
    from PIL import Image

    from pixelrec_data.simulator.covers import render
    from pixelrec_data.synthetic.catalog import VISUAL_FEATURES

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        path = folder / f"{n}.jpg"
        if path.exists():
            continue
        rng = np.random.default_rng(n)
        features = {name: float(v) for name, v in zip(VISUAL_FEATURES, rng.random(len(VISUAL_FEATURES)))}
        scene = np.asarray(render(features, size=(480, 270)), dtype=np.int16)
        noisy = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(noisy, "RGB").save(out, "JPEG", quality=90)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(out.getvalue())
        tmp.rename(path)
    return folder


def serve(port: int, folder: Path, count: int) -> None:
    from aiohttp import web

    images = {f"{n}.jpg": (folder / f"{n}.jpg").read_bytes() for n in range(count)}

    async def img(request):
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", img)
    # aiohttp calls print once the socket listens: only then is the server ready
    web.run_app(app, host="127.0.0.1", port=port, print=lambda _: print("ready", flush=True),
                access_log=None)


# --- measuring --------------------------------------------------------------------------------
class PeakRSS:
    """Samples the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            children = collections.defaultdict(list)
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    children[ppid].append(int(entry))
            total, todo = 0, [self.pid]
            while todo:
                pid = todo.pop()
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    pass
                todo.extend(children.get(pid, ()))
            self.peak = max(self.peak, total)
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS bytes of the process tree, stdout+stderr, CPU seconds) of one
    command; the CPU counts the command and every descendant that was waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    rss = PeakRSS(proc.pid)
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    peak = rss.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {proc.returncode}:\n{out[-2000:]}")
    return wall, peak, out, cpu


def measured(count: int, wall: float, peak: int, cpu: float) -> dict:
    return {"rate": count / wall, "rss": peak, "wall": wall, "cpu": cpu, "per_cpu": count / cpu}


async def floor_client(urls: list[str], concurrency: int) -> int:
    """GET + read + a full Pillow decode of every URL: what any cover fetcher must at least do."""
    import aiohttp
    from PIL import Image

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(url):
            async with sem, session.get(url) as resp:
                body = await resp.read() if resp.status == 200 else b""
            with Image.open(io.BytesIO(body)) as image:
                image.load()
            return 1
        done = await asyncio.gather(*(one(u) for u in urls))
    return sum(done)


def run_floor(urls, concurrency) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listing:
        json.dump(urls, listing)
        listing.flush()
        wall, peak, out, cpu = timed([sys.executable, __file__, "--floor", listing.name,
                                      "--concurrency", str(concurrency)])
    assert int(out.split()[-1]) == len(urls), f"the floor client got {out[-200:]}"
    return measured(len(urls), wall, peak, cpu)


def compile_sources() -> None:
    """Our packages' bytecode, compiled once as pip compiles an installed package's (img2dataset's):
    with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise recompile its modules
    on every run (0.04 CPU-s a run here)."""
    import compileall

    for package in ("pixelrec_data", "pipelines", "schemas"):
        compileall.compile_dir(ROOT / package, quiet=1)


def make_release(urls: list[str], folder: Path) -> Path:
    import pyarrow as pa

    from schemas.io import write_table
    from schemas.tables import ITEMS

    folder.mkdir(parents=True)
    rows = [{"item_id": f"i{n}", "cover_url": url} for n, url in enumerate(urls)]
    write_table(pa.Table.from_pylist(rows, schema=ITEMS), folder / "items.parquet", "items")
    return folder


def run_pixelrec(urls, args, work: Path, resize: bool, profile: Path | None = None) -> dict:
    release = make_release(urls, Path(tempfile.mkdtemp(dir=work)) / "release")
    cmd = PIXELREC + ["fetch-covers", "--release", str(release), "--rate", "0", "--retries", "1",
                      "--concurrency", str(args.concurrency), "--timeout", "30",
                      "--allow-private-hosts"]  # the cover server is on 127.0.0.1
    if resize:
        cmd += ["--resize", str(args.size), "--resize-mode", args.mode]
    if profile is not None:
        cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "-r", "200", "--format",
               "raw", "-o", str(profile), "--"] + cmd
    wall, peak, out, cpu = timed(cmd)
    summary = json.loads((stats_dir(release) / "summary.json").read_text())
    assert summary["ok"] == len(urls), summary
    shutil.rmtree(release.parent)
    return measured(len(urls), wall, peak, cpu)


def img2dataset_exe(path: Path) -> Path | None:
    exe = path / "bin" / "img2dataset"
    if not exe.exists():
        print(f"no img2dataset in {path}: ratios against the floor client (to compare with "
              f"img2dataset: python3 -m venv {path} && {path}/bin/pip install "
              f"img2dataset=={IMG2DATASET_VERSION})", flush=True)
        return None
    return exe


def run_img2dataset(exe: Path, urls, args, work: Path) -> dict:
    folder = Path(tempfile.mkdtemp(dir=work))
    (folder / "urls.txt").write_text("\n".join(urls) + "\n")
    cmd = [str(exe), "--url_list", str(folder / "urls.txt"), "--input_format", "txt",
           "--output_folder", str(folder / "out"), "--output_format", "files",
           "--image_size", str(args.size), "--resize_mode", args.mode, "--processes_count", "2",
           "--thread_count", str(args.img2dataset_threads), "--encode_quality", "95",
           "--timeout", "30", "--retries", "1", "--enable_wandb", "False"]
    wall, peak, out, cpu = timed(cmd, cwd=folder)
    ok = sum(json.loads(p.read_text())["successes"] for p in (folder / "out").glob("*_stats.json"))
    assert ok == len(urls), f"img2dataset stored {ok} of {len(urls)}:\n{out[-1500:]}"
    shutil.rmtree(folder)
    return measured(len(urls), wall, peak, cpu)


# --- profile ----------------------------------------------------------------------------------
PROFILE_KINDS = [  # the first kind whose pattern any frame of a sample matches
    ("idle: waiting for work, I/O or the GIL", ("Condition.wait", "EpollSelector.select",
                                                 "Queue.get", "SimpleQueue.get")),
    ("phash", ("phash",)),
    ("JPEG encode (Pillow)", ("_encode (",)),
    ("decode + resize", ("process_cover",)),
    ("file writes", ("store_cover", "writing.py", "formats.py", "bodies.py")),
    ("covers.parquet + stats", ("write_covers_table", "write_shard", "neardup", "summarize")),
    ("HTTP client (aiohttp)", ("aiohttp", "client.py", "guarded.py")),
    ("event loop, thread hand-offs", ("asyncio", "concurrent/futures", "threading")),
    ("start-up (imports)", ("importlib", "<module>")),
]


def summarize_profile(path: Path) -> list[tuple[str, float]]:
    counts, total = collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames, n = stack.split(";"), int(n)
        total += n
        kind = next((k for k, pats in PROFILE_KINDS if any(p in f for f in frames for p in pats)),
                    "other")
        counts[kind] += n
    return [(k, v / max(total, 1)) for k, v in counts.most_common()]


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covers", type=int, default=3000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--mode", default="keep_ratio", choices=["keep_ratio", "center_crop"])
    parser.add_argument("--concurrency", type=int, default=16, help="fetch-covers and the floor")
    parser.add_argument("--img2dataset-threads", type=int, default=64, help="per process (2)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--img2dataset-venv", type=Path, default=ROOT / "bench" / ".venv-img2dataset")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pixelrec-bench-covers")
    parser.add_argument("--profile", choices=["yes", "no"], default="no")
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK)
                        else None, help="where the tools write (default: /dev/shm when writable)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # run the floor client
    args = parser.parse_args()
    folder = args.cache / f"480x270-{args.covers}"
    if args.serve:
        return serve(args.serve, folder, args.covers)
    if args.floor:
        return print(asyncio.run(floor_client(json.loads(args.floor.read_text()), args.concurrency)))
    render_covers(folder, args.covers)
    compile_sources()
    exe = img2dataset_exe(args.img2dataset_venv)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--covers",
                               str(args.covers), "--cache", str(args.cache)],
                              stdout=subprocess.PIPE, text=True)
    results, shares, load = collections.defaultdict(list), None, [os.getloadavg()]
    try:
        assert server.stdout.readline().strip() == "ready"
        urls = [f"http://127.0.0.1:{port}/img/{n}.jpg" for n in range(args.covers)]
        run_floor(urls[:200], args.concurrency)  # warm-up
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            work = Path(tmp)
            for run in range(args.runs):  # alternate, so a change of load hits every side alike
                results["floor"].append(run_floor(urls, args.concurrency))
                results["resize"].append(run_pixelrec(urls, args, work, resize=True))
                if exe is not None:
                    results["img2dataset"].append(run_img2dataset(exe, urls, args, work))
                results["default"].append(run_pixelrec(urls, args, work, resize=False))
                print(f"run {run + 1}: " + ", ".join(
                    f"{k} {v[-1]['rate']:.0f}/s {v[-1]['cpu']:.1f} CPU-s" for k, v in results.items()),
                    flush=True)
            if args.profile == "yes":
                profile = work / "profile.txt"
                run_pixelrec(urls, args, work, resize=False, profile=profile)
                shares = summarize_profile(profile)
    finally:
        server.terminate()
        server.wait(timeout=10)
    load.append(os.getloadavg())
    report(args, results, shares, load)


def report(args, results, shares, load) -> None:
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rate", "cpu", "per_cpu", "rss")}
           for k, v in results.items()}
    print(f"{args.covers} covers 480x270 JPEG, fetch-covers --concurrency {args.concurrency}, "
          f"img2dataset 2 processes x {args.img2dataset_threads} threads, resize {args.size} "
          f"{args.mode}, {args.runs} runs, {os.cpu_count()} CPUs, outputs in "
          f"{args.workdir or tempfile.gettempdir()}; load average before "
          f"{'/'.join(f'{x:.2f}' for x in load[0])}, after {'/'.join(f'{x:.2f}' for x in load[1])}")
    labels = {"floor": "floor: aiohttp GET + Pillow decode", "resize": "pixelrec fetch-covers --resize",
              "img2dataset": "img2dataset", "default": "pixelrec fetch-covers (default)"}
    for key, label in labels.items():
        if key not in med:
            continue
        m, runs = med[key], ", ".join(f"{r['per_cpu']:.0f}" for r in results[key])
        print(f"  {label:36s} median {m['rate']:6.0f} images/s {m['cpu']:6.1f} CPU-s "
              f"{m['per_cpu']:6.0f} images/CPU-s (runs: {runs})  peak RSS {m['rss'] / 2**20:5.0f} MiB")
    other = "img2dataset" if "img2dataset" in med else "floor"
    print(f"  resize: pixelrec / {other} = {med['resize']['per_cpu'] / med[other]['per_cpu']:.2f}x "
          f"images per CPU-second, {med['resize']['rate'] / med[other]['rate']:.2f}x images/s")
    if shares:
        print("  default mode, where the time goes (py-spy samples of every thread, idle ones too):")
        for kind, share in shares:
            print(f"    {share:6.1%}  {kind}")


if __name__ == "__main__":
    main()
