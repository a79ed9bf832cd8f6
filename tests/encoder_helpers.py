"""Encoder weight files for tests: an ImageEncoder's tower and DTL as one state dict ("visual.*",
"dtl.*"), a file `--encoder-weights` reads."""
from pathlib import Path

import torch


def save_encoder_weights(encoder, path) -> Path:
    state = {f"visual.{k}": v.detach().cpu() for k, v in encoder.visual.state_dict().items()}
    state.update({f"dtl.{k}": v.detach().cpu() for k, v in encoder.dtl.state_dict().items()})
    torch.save(state, path)
    return Path(path)
