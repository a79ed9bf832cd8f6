"""Bench: seconds per training epoch and per full evaluation, MF and SASRec, Pixel200K size.

    .venv/bin/python bench/train_epoch.py [--steps 30] [--eval-batches 2] [--mf-dim 512]
    .venv/bin/python bench/train_epoch.py --device cuda --steps 0 --eval-batches 0 \
        --models sasrec --compile reduce-overhead [--bf16] [--eval-precision fp32 tf32 bf16]
    .venv/bin/python bench/train_epoch.py --models srgnn sasrec --users 943 --items 1682 \
        --mean-length 106 --steps 100 --threads 1      # MovieLens-100k's shape, any model names

A synthetic Pixel200K-shaped release (200K users, 96,282 items, ~3.96M rows; toy.pixel200k_like;
--users, --items and --mean-length give it another shape) is generated with numpy (kept in --release-dir when given, and reused). Timing goes through the
trainer itself (trainer/train.py Run: its DataLoader, loss, AdamW, compile and padding;
evaluation/metrics.py score_users), so the figures are those of `pixelrec train`.

Training: --warmup steps first (untimed: compilation and CUDA-graph recording happen there), then
--steps timed steps (0 = one whole epoch, nothing projected). Evaluation: one warm-up batch, then
--eval-batches batches of 1024 test users spread over all users (0 = every user) per
--eval-precision. A partial measurement is projected linearly to the whole epoch / all users and
the output says so ("projected": true). CUDA timings synchronise the device before each clock read.
Batch sizes are the paper's (MF 512, SASRec 64) and SASRec d = 512. MF's paper d = 4096 needs
~20 GB (tables, gradients, AdamW state): fine on an H100, too much for a small CPU box, so
--mf-dim defaults to 512 on CPU and 4096 on CUDA.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # toy data
os.environ.setdefault("PIXELREC_QUIET", "1")

import torch  # noqa: E402

from pixelrec_data.baselines.evaluation import metrics as E  # noqa: E402
import toy  # noqa: E402
from pixelrec_data.baselines.trainer.train import Run  # noqa: E402


class FirstSamples:
    """The first n samples of a samples object (a shorter epoch with the same batch cost)."""

    def __init__(self, samples, n: int):
        self.samples, self.n = samples, min(n, len(samples))

    def __len__(self):
        return self.n

    def batch(self, index, rng):
        return self.samples.batch(index, rng)


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def release_folder(args, scratch: Path) -> Path:
    folder = Path(args.release_dir) if args.release_dir else scratch / "release"
    shape = {"mean_length": args.mean_length} if args.mean_length else {}
    suffix = f"x{args.mean_length:g}" if args.mean_length else ""
    folder = folder / f"pixel200k-like-{args.users}x{args.items}{suffix}"
    if not (folder / "splits" / "test.parquet").exists():
        users, items = toy.pixel200k_like(n_users=args.users, n_items=args.items, **shape)
        toy.write_release_arrays(folder, users, items, args.items)
    return folder


def time_training(run: Run, steps: int, warmup: int) -> dict:
    device, full = run.dist.device, run.samples
    batch_size = int(run.config["train_batch_size"])
    steps_per_epoch = -(-len(full) // batch_size)
    started = clock(device)
    if warmup:
        run.samples = FirstSamples(full, warmup * batch_size)
        run.train_epoch(0)
    warm_s = clock(device) - started
    run.samples = full if steps == 0 else FirstSamples(full, steps * batch_size)
    timed_steps = -(-len(run.samples) // batch_size)
    started, cpu_started = clock(device), time.process_time()
    loss = run.train_epoch(1)
    wall, cpu = clock(device) - started, time.process_time() - cpu_started
    run.samples = full
    scale = steps_per_epoch / timed_steps
    return {"batch_size": batch_size, "warmup_steps": warmup, "warmup_s": round(warm_s, 2),
            "steps_timed": timed_steps, "steps_per_epoch": steps_per_epoch,
            "projected": timed_steps < steps_per_epoch, "mean_loss": round(loss, 5),
            "ms_per_step": round(1e3 * wall / timed_steps, 3),
            "epoch_s": round(wall * scale, 2), "epoch_cpu_s": round(cpu * scale, 2)}


def time_evaluation(run: Run, batches: int, precision: str, batch_size: int = 1024) -> dict:
    """Full-sort test evaluation; a compiled scorer is used for fp32 (the default precision), the
    eager one for tf32/bf16 so that no compiled graph is reused under another precision."""
    device, users = run.dist.device, run.data.n_users
    stride = 1 if batches == 0 else max(1, users // (batch_size * batches))
    scorer = run.scorer if precision == "fp32" else None

    def score(world):
        return E.score_users(run.model, run.data, "test", device, batch_size, rank=0, world=world,
                             precision=precision, scorer=scorer, pad_last=run.compile)

    started = clock(device)
    score(max(1, users // batch_size))  # one batch: compilation / graph capture, allocator warm-up
    warm_s = clock(device) - started
    started = clock(device)
    ranks, _ = score(stride)
    seconds = clock(device) - started
    scored = ranks[1::stride]
    return {"precision": precision, "users_timed": len(scored), "warmup_s": round(warm_s, 2),
            "projected": stride > 1, "eval_s": round(seconds * users / len(scored), 3),
            "metrics_of_timed_users": E.metrics_from_ranks(scored)}


def bench_model(name: str, release: Path, args, out: Path) -> dict:
    dim = args.mf_dim or (4096 if args.device == "cuda" else 512)
    overrides = {"compile": args.compile, "compile_backend": args.compile_backend,
                 "amp": bool(args.bf16), "num_workers": args.num_workers}
    if name == "mf":
        overrides["embedding_size"] = dim
    elif args.sasrec_dim:
        overrides["embedding_size"] = args.sasrec_dim
    torch.manual_seed(0)
    started = time.perf_counter()
    run = Run(release, name, out=out, overrides=overrides, device=args.device, log=lambda *_: None)
    entry = {"model": name, "device": str(run.dist.device), "compile": args.compile,
             "compile_backend": args.compile_backend, "bf16_training": bool(args.bf16),
             "embedding_size": int(run.config["embedding_size"]), "samples_per_epoch": len(run.samples),
             "setup_s": round(time.perf_counter() - started, 2)}
    if args.steps >= 0:
        entry["train"] = time_training(run, args.steps, args.warmup)
    entry["eval"] = [time_evaluation(run, args.eval_batches, p) for p in args.eval_precision]
    if run.dist.device.type == "cuda":
        entry["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return entry


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", default=["mf", "sasrec"])
    parser.add_argument("--steps", type=int, default=30, help="timed steps; 0 = a whole epoch; -1 = no training")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile needs ~10)")
    parser.add_argument("--eval-batches", type=int, default=2, help="1024-user batches; 0 = all users")
    parser.add_argument("--eval-precision", nargs="+", default=["fp32"], choices=E.PRECISIONS)
    parser.add_argument("--compile", default="none", help="none|default|reduce-overhead|max-autotune")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in training (CUDA only)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers building batches")
    parser.add_argument("--mf-dim", type=int, default=0, help="MF d (default 512 on CPU, 4096 on CUDA)")
    parser.add_argument("--sasrec-dim", type=int, default=0, help="SASRec d (default: the config's 512)")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=96_282)
    parser.add_argument("--mean-length", type=float, default=0,
                        help="mean rows per user (default: Pixel200K's); MovieLens-100k's shape is "
                             "--users 943 --items 1682 --mean-length 106")
    parser.add_argument("--release-dir", default="", help="keep/reuse the synthetic release here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        release = release_folder(args, scratch)
        report = {"release": release.name, "release_s": round(time.perf_counter() - started, 2),
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "load_average_1m": round(os.getloadavg()[0], 2),
                  "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
        for name in args.models:
            entry = bench_model(name, release, args, scratch / "runs")
            report[name] = entry
            print(json.dumps({name: entry}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
