"""Local weight files for image encoders: read them and normalise their key names.

Accepted files (nothing is ever fetched):
- an open_clip / OpenAI CLIP checkpoint: a state dict (torch.save, .safetensors, optionally wrapped
  in {"state_dict": ...}, keys optionally prefixed "module."), full CLIP (keys "visual.*") or the
  visual tower alone; an OpenAI TorchScript archive (RN50.pt, ViT-B-32.pt) also works;
- a file of an encoder's tower and DTL (keys "visual.*" and "dtl.*"), or a whole PixelNet model
  state dict (keys "...visual_encoder.encoder.visual.*"): everything before the first "visual." or
  ".dtl." is dropped, so a trained item encoder round-trips through `--encoder-weights`.

OpenAI's CLIP releases (the TorchScript archives, or their state dicts saved as they are) carry
three integers beside the weights, `input_resolution`, `context_length` and `vocab_size`, which
open_clip's loader drops from exactly those files; `is_openai_release` looks for them, since
OpenAI's towers were trained with QuickGELU and must run with it.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from schemas.errors import InputError
from schemas.manifest import sha256_file


def read_state_dict(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: encoder weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path), device="cpu")
        else:
            raw = _torch_load(path)
    except InputError:
        raise
    except Exception as exc:  # a corrupt or foreign file: one line, no traceback
        raise InputError(f"{path}: cannot read encoder weights ({type(exc).__name__}: {exc})") from None
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: not a state dict")
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as exc:
        # OpenAI's CLIP releases are TorchScript archives, not pickled dicts
        if "TorchScript" not in str(exc) and "constants.pkl" not in str(exc):
            raise
        with warnings.catch_warnings():  # torch.jit.load is deprecated, but the files are what they are
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()


OPENAI_MARKS = ("input_resolution", "context_length", "vocab_size")


def is_openai_release(state: dict) -> bool:
    """True for a state dict in OpenAI's CLIP release layout (its three integer marks present)."""
    keys = {k[len("module."):] if k.startswith("module.") else k for k in state}
    return all(mark in keys for mark in OPENAI_MARKS)


def split_keys(state: dict) -> tuple[dict, dict]:
    """Split a state dict into (visual-tower keys, DTL keys), prefixes removed.

    If any key names a "visual." sub-module the file is a full model (CLIP, or a PixelNet run) and
    only those keys are the tower; otherwise every non-DTL key is (a visual-only checkpoint).
    """
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    full = any(k.startswith("visual.") or ".visual." in k for k in state)
    visual, dtl = {}, {}
    for key, value in state.items():
        if key.startswith("dtl."):
            dtl[key[len("dtl."):]] = value
        elif ".dtl." in key:
            dtl[key.split(".dtl.", 1)[1]] = value
        elif key.startswith("visual."):
            visual[key[len("visual."):]] = value
        elif ".visual." in key:
            visual[key.split(".visual.", 1)[1]] = value
        elif not full:
            visual[key] = value
    return visual, dtl


def load_into(visual: torch.nn.Module, dtl: torch.nn.Module, path, convert=None,
              state: dict | None = None) -> dict:
    """Load `path` (or `state`, already read from it) into the tower (and DTL when present).
    Returns a report for describe().

    `convert` maps the tower's keys of a foreign layout (timm's checkpoint filters)."""
    state = read_state_dict(path) if state is None else state
    vis_state, dtl_state = split_keys({k: v for k, v in state.items() if k not in OPENAI_MARKS})
    if convert is not None:
        vis_state = convert(vis_state)
    wanted = visual.state_dict()
    missing = sorted(k for k in wanted if k not in vis_state)
    if len(missing) == len(wanted):
        raise InputError(f"{path}: no key matches the encoder (is it a checkpoint of another model?)")
    if missing:
        raise InputError(f"{path}: {len(missing)} encoder tensors missing, e.g. {missing[0]}")
    bad = [k for k in wanted if tuple(vis_state[k].shape) != tuple(wanted[k].shape)]
    if bad:
        k = bad[0]
        raise InputError(f"{path}: shape mismatch for {k}: file {tuple(vis_state[k].shape)}, "
                         f"encoder {tuple(wanted[k].shape)} (wrong --encoder?)")
    visual.load_state_dict({k: vis_state[k] for k in wanted}, strict=True)
    loaded_dtl = False
    if dtl_state:
        want = dtl.state_dict()
        if set(want) == set(dtl_state) and all(want[k].shape == dtl_state[k].shape for k in want):
            dtl.load_state_dict(dtl_state)
            loaded_dtl = True
    return {"weights": str(path), "weights_sha256": sha256_file(path), "init": "file",
            "dtl_from_file": loaded_dtl, "ignored_keys": len(vis_state) - len(wanted),
            "openai_release": is_openai_release(state)}
