"""torch.distributed glue: one process per device under torchrun, a no-op in a plain process.

torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; the backend is NCCL on CUDA and gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        """Element-wise sum of a numpy array over all processes."""
        if self.world == 1:
            return array
        tensor = torch.as_tensor(array).to(self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
        where = torch.device("cuda", local)
    else:
        where = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return Dist(rank=rank, world=world, device=where)
