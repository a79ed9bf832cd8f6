"""Training samples per input format: global sample indices -> one numpy batch dict.

A model names its format in `Recommender.train_format`; `make_samples` builds the matching class.
Every class draws its negatives from the generator passed to `batch`, which the trainer seeds with
(seed, epoch, batch number): the same batch comes out on 1 process or split over DDP ranks, and
after a resume.

Batch dicts (all int arrays; 0 = PAD; "left-padded" means the most recent item is the last column):
- "seq"      SEQ windows (SASRec, GRU4Rec, NextItNet): pos [B,11] window, neg [B,11] one negative
             per target slot (0 elsewhere). Inputs are pos[:, :-1], targets pos[:, 1:] / neg[:, 1:].
- "prefix"   AUGSEQ prefixes (SRGNN, LightSANs): seq [B,11] prefix (column 10 the target), neg [B].
- "pair"     PAIR rows (MF, LightGCN): user [B], pos [B], neg [B].
- "bert"     masked windows (BERT4Rec): input [B,11] with [MASK] = item_num, pos [B,11] original,
             neg [B,11], flag [B,11] bool (masked positions).
- "position" one sample per window position (DSSM, FM, ACF): context [N,10] = the other items of
             the window (earlier and later, left-padded), pos [N], neg [N], user [N] (the window's
             user; ACF reads it). A batch of B windows gives
             N = sum of their lengths samples, as the official collate does.
Negatives: uniform over 1..I; SEQ-family formats exclude the items of the window (or prefix), PAIR
excludes the user's whole training history (as in the paper's official code). Neither excludes valid/test items.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.utils.data

from . import interactions as D


class TrainSamples:
    """len() samples; batch(indices, rng) -> dict of numpy arrays."""

    def __init__(self, data: D.Interactions):
        self.n_items = data.n_items

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, index: np.ndarray, rng: np.random.Generator) -> dict:
        raise NotImplementedError


class SeqSamples(TrainSamples):
    def __init__(self, data: D.Interactions, **_):
        super().__init__(data)
        self.rows, self.users, self.lengths = D.build_windows(data)

    def __len__(self):
        return len(self.rows)

    def batch(self, index, rng):
        rows = self.rows[index]
        need = np.zeros(rows.shape, dtype=bool)
        need[:, 1:] = rows[:, :-1] != 0  # a target slot: its input (the item before) is real
        return {"pos": rows, "neg": D.window_negatives(rng, rows, need, self.n_items)}


class PrefixSamples(TrainSamples):
    def __init__(self, data: D.Interactions, **_):
        super().__init__(data)
        self.rows, _, self.lengths = D.build_windows(data)
        self.window, self.prefix_len = D.build_prefixes(self.lengths)

    def __len__(self):
        return len(self.window)

    def batch(self, index, rng):
        seq = D.prefix_rows(self.rows, self.lengths, self.window[index], self.prefix_len[index])
        need = np.zeros(seq.shape, dtype=bool)
        need[:, -1] = True
        neg = D.window_negatives(rng, seq, need, self.n_items)[:, -1]
        return {"seq": seq, "neg": neg}


class PairSamples(TrainSamples):
    def __init__(self, data: D.Interactions, **_):
        super().__init__(data)
        self.users, self.items = D.build_pairs(data)
        self.history_keys = np.sort(self.users.astype(np.int64) * (data.n_items + 1) + self.items)

    def __len__(self):
        return len(self.items)

    def batch(self, index, rng):
        users = self.users[index]
        neg = D.history_negatives(rng, users, self.history_keys, self.n_items)
        return {"user": users, "pos": self.items[index], "neg": neg}


class BertSamples(SeqSamples):
    """Each real position is masked independently with probability mask_ratio (no 80/10/10)."""

    def __init__(self, data: D.Interactions, mask_ratio: float = 0.6, **_):
        super().__init__(data)
        self.mask_ratio = float(mask_ratio)
        self.mask_token = data.item_num

    def batch(self, index, rng):
        rows = self.rows[index]
        flag = (rows != 0) & (rng.random(rows.shape) < self.mask_ratio)
        neg = D.window_negatives(rng, rows, flag, self.n_items)
        return {"input": np.where(flag, self.mask_token, rows).astype(np.int64), "pos": rows,
                "neg": neg, "flag": flag}


# column j removed from an 11-slot window: the 10 other slots, in order
_OTHERS = np.array([np.delete(np.arange(D.C), j) for j in range(D.C)])


class PositionSamples(SeqSamples):
    def batch(self, index, rng):
        rows = self.rows[index]
        real = rows != 0
        neg = D.window_negatives(rng, rows, real, self.n_items)
        b, j = np.nonzero(real)
        # removing a real slot from a left-padded window leaves a left-padded context of 10
        context = rows[b[:, None], _OTHERS[j]]
        return {"context": context, "pos": rows[b, j], "neg": neg[b, j], "user": self.users[index][b]}


FORMATS = {"seq": SeqSamples, "prefix": PrefixSamples, "pair": PairSamples,
           "bert": BertSamples, "position": PositionSamples}


def make_samples(train_format: str, data: D.Interactions, **options) -> TrainSamples:
    return FORMATS[train_format](data, **options)


class EpochBatches(torch.utils.data.IterableDataset):
    """One rank's batches of one epoch, as a torch IterableDataset for a DataLoader.

    The epoch order is a permutation seeded by (seed, epoch); global batch b holds
    batch_size x world samples, is built with a generator seeded by (seed, epoch, b), and this rank
    keeps its rows rank, rank + world, ... (DistributedSampler's split, without its padding).
    So the batches depend on neither the number of DataLoader workers (worker w builds batches
    w, w + n, ..., which the DataLoader's round-robin returns in order) nor the number of ranks.
    Each item is (dict of tensors, rows in the global batch). Use DataLoader(batch_size=None).
    """

    def __init__(self, samples: TrainSamples, batch_size: int, seed: int, epoch: int,
                 rank: int = 0, world: int = 1):
        super().__init__()
        self.samples, self.seed, self.epoch, self.rank, self.world = samples, seed, epoch, rank, world
        self.global_batch = batch_size * world
        self.order = np.random.default_rng([seed, epoch]).permutation(len(samples))
        # every rank needs a share: a last global batch smaller than `world` is dropped
        self.n_batches = len(self.order) // self.global_batch + (
            len(self.order) % self.global_batch >= world)

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for number in range(worker, self.n_batches, workers):
            index = self.order[number * self.global_batch:(number + 1) * self.global_batch]
            batch = self.samples.batch(index, np.random.default_rng([self.seed, self.epoch, number]))
            rows = len(next(iter(batch.values())))
            yield ({k: torch.as_tensor(np.ascontiguousarray(v[self.rank::self.world]))
                    for k, v in batch.items()}, rows)


def pad_rows(batch: dict, size: int) -> tuple[dict, int]:
    """Pad every tensor of `batch` along dim 0 to `size` rows with copies of row 0 (the fixed
    shapes of the `compile` option, trainer/compile.py; evaluation pads its batches the same way).

    Returns (padded batch, number of real rows). Copies of a real row keep every model's inputs
    valid (a user id, a real history), whatever the model does with PAD ids."""
    real = len(next(iter(batch.values())))
    if real >= size:
        return batch, real
    return {k: torch.cat([v, v[:1].expand(size - real, *v.shape[1:])]) for k, v in batch.items()}, real
