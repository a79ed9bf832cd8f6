"""torch.compile for the trainer's two hot paths: the training forward (per-sample losses) and the
full-sort scoring function of evaluation (config keys `compile`, `compile_backend`).

At batch 64 a SASRec step is a few hundred small kernels, so on a GPU the step is bound by kernel
launches and Python dispatch, not by arithmetic. `compile: reduce-overhead` (inductor + CUDA graphs)
replays each compiled graph with one launch; `default` / `max-autotune` fuse kernels without CUDA
graphs (max-autotune adds CUDA graphs and a GEMM search). `none` (the default) is the eager path,
unchanged.

Fixed shapes: CUDA graphs and inductor specialise on shapes, and an epoch's last batch is smaller.
Under compile a short training batch is padded to the full batch with copies of its first row and
those rows get weight 0 in the loss (so they add nothing to the loss or the gradient), and a short
evaluation batch is padded the same way and its extra scores are dropped: every user is still
scored, and the metrics protocol is unchanged. The "position" format (FM, DSSM, ACF) has a
variable number of samples per batch by construction; it is left to torch.compile's automatic
dynamic shapes (a recompile, then a dynamic graph) and is not tuned.

Numerics: with `compile_backend: aot_eager` (no code generation; what the CPU tests use) the compiled
path runs the same kernels as eager. Inductor fuses and reorders float arithmetic and draws dropout
masks from its own Philox generator, so a compiled run matches an eager run statistically, not bit
for bit; the run id includes the compile settings whenever compile is on.
"""
from __future__ import annotations

import torch

from schemas.errors import InputError

MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")
UNPADDED_FORMATS = ("position",)  # samples per batch vary by construction


def compile_mode(config: dict) -> str:
    mode = str(config.get("compile", "none") or "none").lower()
    if mode not in MODES:
        raise InputError(f"--set compile={mode}: expected one of {', '.join(MODES)}")
    backend = str(config.get("compile_backend", "inductor"))
    if backend not in BACKENDS:
        raise InputError(f"--set compile_backend={backend}: expected one of {', '.join(BACKENDS)}")
    return mode


def compiled(fn, config: dict):
    """torch.compile(fn) with the config's mode and backend; fn itself when compile is none.

    Only inductor takes a `mode`; other backends (aot_eager for tests, cudagraphs) ignore it."""
    mode = compile_mode(config)
    if mode == "none":
        return fn
    backend = str(config.get("compile_backend", "inductor"))
    if backend == "inductor":
        return torch.compile(fn, mode=None if mode == "default" else mode, backend=backend)
    return torch.compile(fn, backend=backend)


def step_begin() -> None:
    """Tell CUDA-graph trees a new iteration starts, so the previous replay's outputs (already
    consumed) may be overwritten (call it only on the compiled path)."""
    torch.compiler.cudagraph_mark_step_begin()


def row_weights(real: int, size: int, device) -> torch.Tensor:
    """[size] float: 1 for real rows, 0 for padding rows."""
    return (torch.arange(size, device=device) < real).float()
