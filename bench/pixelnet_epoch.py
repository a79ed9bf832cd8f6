"""PixelNet epoch cost: SASRec + ViT-B/32 (last 2 blocks tuned, 'mean'), Pixel200K-shaped data.

    .venv/bin/python bench/pixelnet_epoch.py                # GPU: the setting above, bf16 autocast
    .venv/bin/python bench/pixelnet_epoch.py --tiny         # CPU smoke check (tiny ViT, small data)

Synthetic data: Pixel200K shapes from toy.pixel200k_like (200K users, 96,282 items, Zipf-like
popularity), SEQ windows of 11 and one negative per target position drawn by the trainer's own
samples code; every item has random uint8 pixels in an in-memory image cache [items + 1, S, S, 3].
Two paths are timed on the same batches:
- plain: every slot of the B x 22 batch encoded end to end (the official pass);
- optimised: distinct items encoded once, frozen trunk (blocks 0..9) read from a per-item cache,
  only the tuned blocks + DTL run per step (CLS-only does not apply to 'mean').
Printed: seconds per step, items encoded per second (distinct items through the encoder) and
slots served per second (B x 22 / step), the projected epoch time (windows / batch x step time),
the trunk-cache fill rate and its one-off cost (the first epoch fills it as it goes).
Random weights and pixels: the cost does not depend on them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # toy data

import toy  # noqa: E402
from pixelrec_data.baselines.data.interactions import Interactions  # noqa: E402
from pixelrec_data.baselines.models.pixelnet.models import PixelNetSASRec  # noqa: E402
from pixelrec_data.baselines.data.samples import make_samples  # noqa: E402

PIXEL200K_WINDOWS = 323_715  # SEQ windows of the Pixel200K-shaped file (as in the paper's official code)


def interactions(n_users: int, n_items: int, seed: int = 0) -> Interactions:
    """Pixel200K-like rows -> Interactions (items 1..I): last row test, second to last validation."""
    users, items = toy.pixel200k_like(n_users, n_items, seed=seed)
    items = items.astype(np.int32) + 1
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    ends = np.r_[starts[1:], len(users)]
    is_train = np.ones(len(users), dtype=bool)
    is_train[ends - 1] = False
    is_train[ends - 2] = False
    offsets = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(ends - starts - 2, out=offsets[2:])
    return Interactions(item_tokens=pa.array([f"i{i}" for i in range(n_items)]),
                        user_tokens=pa.array([f"u{u}" for u in range(n_users)]),
                        train_offsets=offsets, train_items=items[is_train],
                        valid_item=np.r_[0, items[ends - 2]].astype(np.int32),
                        test_item=np.r_[0, items[ends - 1]].astype(np.int32))


def model_config(args, optimised: bool, pixels) -> dict:
    return {"n_layers": 2, "n_heads": 4, "embedding_size": 512, "inner_size": 2, "hidden_dropout_prob": 0.1,
            "attn_dropout_prob": 0.1, "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss": "bpr",
            "encoder": args.encoder, "encoder_weights": None, "tune_layers": args.tune_layers,
            "embedding_method": args.method, "dtl_layers": [], "normalise": "half",
            "dedup": optimised, "trunk_cache": args.cache if optimised else "none",
            "trunk_cache_dtype": args.cache_dtype, "eval_encode_batch": 256, "pixel_array": pixels}


def timed_steps(model, samples, args, device, amp) -> dict:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(samples))
    model.train()
    times, distinct = [], []
    for step in range(args.warmup + args.steps):
        index = order[step * args.batch:(step + 1) * args.batch]
        batch = {k: torch.as_tensor(np.asarray(v, dtype=np.int64)).to(device)
                 for k, v in samples.batch(index, np.random.default_rng([0, step])).items()}
        sync(device)
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = model.loss(batch).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            distinct.append(len(torch.unique(torch.cat([batch["pos"], batch["neg"]], 1))))
    step_s = float(np.median(times))
    slots = args.batch * 22
    encoded = float(np.mean(distinct)) if model.visual_encoder.dedup else slots
    return {"step_s": round(step_s, 5), "items_encoded_per_s": round(encoded / step_s, 1),
            "slots_per_s": round(slots / step_s, 1), "distinct_items_per_step": round(float(np.mean(distinct)), 1),
            "epoch_s_projected": round(args.windows / args.batch * step_s, 1)}


def fill_rate(model, args, device, amp) -> dict:
    """Trunk-cache fill: frozen blocks over `fill_items` items, extrapolated to the catalogue."""
    item_encoder = model.visual_encoder
    n = min(args.fill_items, item_encoder.n_items)
    cache = item_encoder._trunk_cache()
    sync(device)
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        for s in range(0, n, 256):
            ids = torch.arange(s, min(s + 256, n), device=device)
            cache.get(ids, item_encoder._trunk_outputs)
    sync(device)
    seconds = time.perf_counter() - start
    return {"fill_items_per_s": round(n / seconds, 1),
            "fill_s_projected": round(item_encoder.n_items / (n / seconds), 1),
            "cache_bytes": cache.nbytes}


def prefill(model, device, amp):
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        model.visual_encoder.prefill(batch_size=256)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="CPU smoke check: tiny ViT, small data")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--encoder", default="ViT-B-32")
    p.add_argument("--tune-layers", type=int, default=2)
    p.add_argument("--method", default="mean", choices=["mean", "cls", "pool"])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=96_282)
    p.add_argument("--windows", type=int, default=PIXEL200K_WINDOWS, help="windows per epoch (projection)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--cache", default="device", choices=["device", "host", "mmap"])
    p.add_argument("--cache-dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--fill-items", type=int, default=4096, help="items timed through the frozen trunk")
    p.add_argument("--skip-plain", action="store_true")
    args = p.parse_args(argv)
    if args.tiny:
        args.encoder, args.users, args.items, args.size = "tiny-vit", 400, 300, 64
        args.steps, args.warmup, args.batch, args.fill_items = 3, 1, 16, 300
    device = torch.device(args.device)
    amp = device.type == "cuda"
    torch.manual_seed(0)
    started = time.perf_counter()
    data = interactions(args.users, args.items)
    samples = make_samples("seq", data)
    pixels = np.random.default_rng(0).integers(0, 256, (data.item_num, args.size, args.size, 3), dtype=np.uint8)
    report = {"device": torch.cuda.get_device_name(device) if amp else "cpu", "encoder": args.encoder,
              "tune_layers": args.tune_layers, "method": args.method, "bf16_autocast": amp,
              "items": data.n_items, "windows_in_data": len(samples), "windows_projected": args.windows,
              "batch": args.batch, "setup_s": round(time.perf_counter() - started, 1)}
    if not args.skip_plain:
        plain = PixelNetSASRec(model_config(args, False, pixels), data).to(device)
        report["plain"] = timed_steps(plain, samples, args, device, amp)
        del plain
    fast = PixelNetSASRec(model_config(args, True, pixels), data).to(device)
    report["cache_fill"] = fill_rate(fast, args, device, amp)
    prefill(fast, device, amp)
    report["optimised"] = timed_steps(fast, samples, args, device, amp)  # steady state: cache full
    opt = report["optimised"]
    report["optimised"]["first_epoch_s_projected"] = round(opt["epoch_s_projected"] + report["cache_fill"]["fill_s_projected"], 1)
    if "plain" in report:
        report["speedup_steady_state"] = round(report["plain"]["step_s"] / opt["step_s"], 2)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
