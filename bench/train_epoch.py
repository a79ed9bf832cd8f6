"""Bench: CPU seconds per training epoch and per full evaluation, MF and SASRec, Pixel200K size.

    .venv/bin/python bench/train_epoch.py [--steps 30] [--eval-batches 2] [--mf-dim 512]

A synthetic Pixel200K-shaped release (200K users, 96,282 items, ~3.96M rows) is generated with
numpy and written to a temp folder. Full epochs and full evaluations take minutes to hours on a
2-core CPU, so the bench times a fixed number of training steps (after 3 warm-up steps; wall and process CPU seconds, since the
machine is shared) and a fixed
number of evaluation batches of 1024 users, and projects them linearly to one epoch (all training
samples) and one full evaluation (all users): the output says so. Batch sizes are the paper's
(MF 512, SASRec 64); SASRec uses the paper's d = 512. MF's paper d = 4096 needs ~20 GB for the
tables, their gradients and AdamW state, more than this shared machine has, so --mf-dim defaults
to 512 (the step cost grows about linearly in d).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pixelrec_data.baselines import evaluate as E  # noqa: E402
from pixelrec_data.baselines import toy  # noqa: E402
from pixelrec_data.baselines.config import resolve_config  # noqa: E402
from pixelrec_data.baselines.data import load_interactions  # noqa: E402
from pixelrec_data.baselines.models import model_class  # noqa: E402
from pixelrec_data.baselines.samples import make_samples  # noqa: E402


def time_training(model, samples, batch_size, steps, config):
    optimizer = torch.optim.AdamW(model.param_groups(config))
    order = np.random.default_rng(0).permutation(len(samples))
    model.train()
    elapsed = cpu = 0.0
    for step in range(steps + 3):
        started, cpu_started = time.perf_counter(), time.process_time()
        index = order[step * batch_size:(step + 1) * batch_size]
        batch = {k: torch.as_tensor(v) for k, v in samples.batch(index, np.random.default_rng(step)).items()}
        loss = model(batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= 3:  # warm-up steps are not timed
            elapsed += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
    per_step, cpu_per_step = elapsed / steps, cpu / steps
    n_steps = -(-len(samples) // batch_size)
    return {"batch_size": batch_size, "steps_timed": steps, "wall_s_per_step": round(per_step, 4),
            "cpu_s_per_step": round(cpu_per_step, 4), "steps_per_epoch": n_steps,
            "epoch_wall_s_projected": round(per_step * n_steps, 1),
            "epoch_cpu_s_projected": round(cpu_per_step * n_steps, 1)}


def time_evaluation(model, data, batches, batch_size=1024):
    users = data.n_users
    started, cpu_started = time.perf_counter(), time.process_time()
    # score_users over a stride gives `batches` full batches of real users
    world = max(1, users // (batch_size * batches))
    E.score_users(model, data, "test", torch.device("cpu"), batch_size, rank=0, world=world)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    scored = len(range(1, users + 1, world))
    return {"users_timed": scored, "wall_s": round(seconds, 2), "cpu_s": round(cpu, 2),
            "full_eval_wall_s_projected": round(seconds * users / scored, 1),
            "full_eval_cpu_s_projected": round(cpu * users / scored, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-batches", type=int, default=2)
    parser.add_argument("--mf-dim", type=int, default=512)
    parser.add_argument("--models", nargs="+", default=["mf", "sasrec"])
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        users, items = toy.pixel200k_like()
        release = toy.write_release_arrays(Path(tmp) / "pixel200k-like", users, items, 96_282)
        data = load_interactions(release)
    report = {"users": data.n_users, "items": data.n_items, "train_rows": len(data.train_items),
              "torch_threads": torch.get_num_threads(), "projected": True,
              "load_average_1m": round(os.getloadavg()[0], 2)}
    for name in args.models:
        config = resolve_config(name, {"embedding_size": args.mf_dim} if name == "mf" else {})
        cls = model_class(name)
        model = cls(config, data)
        samples = make_samples(cls.train_format, data, **model.sample_options())
        entry = {"embedding_size": config["embedding_size"], "samples_per_epoch": len(samples)}
        entry["train"] = time_training(model, samples, int(config["train_batch_size"]), args.steps, config)
        entry["eval"] = time_evaluation(model, data, args.eval_batches)
        report[name] = entry
        print(json.dumps({name: entry}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
