"""The training loop shared by every model (as in the paper's official code), and a run folder.

runs/<id>/ holds config.yaml (resolved), metrics.json (validation and test per epoch, and final),
groups.json (Figures 7/8), train.log, provenance.json (runlog.py), best.pt (the best-validation weights) and last.pt (the state
after the last finished epoch: weights, optimizer, RNG, early-stopping counters, history). The id
is <release>-<model>-<hash of the config without epochs and num_workers>, so rerunning the same command resumes
from last.pt after a kill, and rerunning with more --epochs extends the run.

Batches: each epoch shuffles all samples with a generator seeded by (seed, epoch); a global batch
is train_batch_size x world samples built with a generator seeded by (seed, epoch, batch), so its
negatives are the same on 1 process or split over DDP ranks (rank r takes rows r, r+W, ...). The
loss is sum(rank's per-sample losses) x W / global batch size, so DDP's gradient average equals the
single-process mean exactly.
"""
from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from schemas.errors import InputError
from schemas.atomic import atomic_path, atomic_write_text

from ...progress import bar
from ..config import resolve_config
from ..data.interactions import Interactions, load_interactions
from ..data.samples import EpochBatches, make_samples, pad_rows
from ..evaluation import metrics as E
from ..models import model_class
from . import compile as C
from . import ddp
from .runlog import RunLog, iso_utc, provenance, write_provenance

NAN_CHECK_EVERY = 50  # steps between host syncs that look for a non-finite loss


class NonFiniteLoss(InputError):
    """Training diverged: one line naming the step, exit status 2."""


# speed settings: at these values they are left out of the run id (ids of runs made before the
# keys existed stay valid); any other value changes numerics, so it is part of the id
SPEED_DEFAULTS = {"compile": "none", "compile_backend": "inductor", "eval_precision": "fp32",
                  "deterministic": "auto"}


def deterministic_kernels(mode: str, device: torch.device) -> None:
    """Byte-identical reruns: on 2 CPU threads some kernels (index_put with accumulation, the
    backward of a gather) add in a thread-dependent order, so a PixelNet run drifted from its own
    rerun after a few epochs. `auto` (default) picks PyTorch's deterministic kernels on CPU (about
    8% slower there) and leaves CUDA runs at full speed; `yes` / `no` force either."""
    if mode not in ("auto", "yes", "no"):
        raise InputError(f"deterministic {mode!r}: expected auto, yes or no")
    on = mode == "yes" or (mode == "auto" and device.type == "cpu")
    torch.use_deterministic_algorithms(on, warn_only=True)


def run_id(release: Path, config: dict) -> str:
    key = {k: v for k, v in config.items() if k not in ("epochs", "num_workers")  # no effect on results
           and not (k in SPEED_DEFAULTS and v == SPEED_DEFAULTS[k])}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{release.resolve().name}-{config['model']}-{digest}"


def init_weights(model: torch.nn.Module, source) -> dict:
    """Copy into `model` every tensor of another run's best.pt (or a given .pt state dict) whose
    name and shape match (the paper's transfer, Table 7: an image encoder moves across releases,
    an item table of another catalogue does not). Returns what was loaded and what was not."""
    path = Path(source)
    path = path / "best.pt" if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"--init-from {source}: no best.pt (expected a run folder or a .pt file)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise InputError(f"--init-from {path}: not a readable checkpoint ({exc})") from None
    saved = saved.get("model", saved)  # last.pt holds the weights under "model"
    own = model.state_dict()
    loaded = sorted(k for k, v in saved.items() if k in own and own[k].shape == v.shape)
    if not loaded:
        raise InputError(f"--init-from {path}: no parameter matches this model by name and shape")
    model.load_state_dict({k: saved[k] for k in loaded}, strict=False)
    return {"from": str(path), "loaded": len(loaded), "of": len(own),
            "shape_mismatch": sorted(k for k in saved if k in own and own[k].shape != saved[k].shape),
            "not_in_checkpoint": sorted(set(own) - set(saved))}


def _save(obj, path: Path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Run:
    """One training run: owns the model, optimizer, data, and the run folder."""

    def __init__(self, release, model_name: str, out="runs", overrides=None, device="cpu",
                 log=print, init_from=None):
        release = Path(release)
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
        self.dist = ddp.setup(device)
        cls = model_class(model_name)  # an unknown name fails first, listing the known ones
        self.config = resolve_config(model_name.lower(), overrides)
        self.seed = int(self.config["seed"])
        self.release = release
        if init_from is not None:  # other starting weights: another run (its own id)
            self.config["init_from"] = str(Path(init_from).resolve())
        self.folder = Path(out) / run_id(release, self.config)
        if "release" in self.config:  # image models read the release's image cache or features
            self.config["release"] = str(release)
        self.data: Interactions = load_interactions(release)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        deterministic_kernels(self.config.get("deterministic", "auto"), self.dist.device)
        self.model = cls(self.config, self.data).to(self.dist.device)
        if init_from is not None:  # recorded in config.yaml; a resume then overwrites with last.pt
            report = init_weights(self.model, init_from)
            self.config["init_report"] = report
            if self.dist.main:
                log(f"init-from {report['from']}: loaded {report['loaded']} of {report['of']} tensors"
                    + "".join(f"; {k.replace('_', ' ')}: {', '.join(v)}" for k in ("shape_mismatch", "not_in_checkpoint")
                              if (v := report[k])))
        self.trainable = cls.train_format is not None and any(
            p.requires_grad for p in self.model.parameters())
        self.samples = make_samples(cls.train_format, self.data, **self.model.sample_options()) \
            if self.trainable else None
        self.net = self.model
        if self.trainable and self.dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, find_unused_parameters=True, broadcast_buffers=False)
        # fused AdamW on CUDA (one kernel for the whole update; same algorithm), foreach on CPU
        self.optimizer = torch.optim.AdamW(self.model.param_groups(self.config),
                                           fused=self.dist.device.type == "cuda" or None) \
            if self.trainable else None
        self.amp = bool(self.config.get("amp", True)) and self.dist.device.type == "cuda"
        self.eval_precision = str(self.config.get("eval_precision", "fp32"))
        if self.eval_precision not in E.PRECISIONS:
            raise InputError(f"--set eval_precision={self.eval_precision}: expected one of "
                             f"{', '.join(E.PRECISIONS)}")
        self._compile_hot_paths(cls)
        self.log = log if self.dist.main else (lambda *_: None)
        self.state = {"epoch": 0, "best": -math.inf, "best_epoch": None, "bad_epochs": 0,
                      "history": [], "step": 0}

    def _compile_hot_paths(self, cls):
        """self.train_forward (per-sample training losses) and self.scorer (full-sort scores): the
        model's own methods, or their torch.compile versions under `compile` (compile.py)."""
        self.compile = C.compile_mode(self.config) != "none" and self.trainable
        self.train_forward, self.scorer = self.net, None
        self.pad_train = self.compile and cls.train_format not in C.UNPADDED_FORMATS
        if self.compile:
            self.train_forward = C.compiled(self.net, self.config)
            full_scores = C.compiled(self.model.full_scores, self.config)

            def scorer(batch):
                C.step_begin()
                return full_scores(batch)
            self.scorer = scorer

    def close(self):
        """Free the DDP wrapper before the process group: its reducer holds the group, and a
        group first freed while the interpreter shuts down aborts the process (gloo's threads)."""
        self.net = self.train_forward = self.scorer = None
        gc.collect()  # the run's closures make cycles: free the wrapper now, not at exit
        self.dist.close()

    # -- checkpoints ----------------------------------------------------------------------------
    def save_last(self):
        if self.dist.main:
            _save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()
                   if self.optimizer else None, "state": self.state,
                   "torch_rng": torch.get_rng_state()}, self.folder / "last.pt")
        self.dist.barrier()

    def try_resume(self) -> bool:
        path = self.folder / "last.pt"
        if not path.exists():
            return False
        saved = torch.load(path, map_location=self.dist.device, weights_only=False)
        self.model.load_state_dict(saved["model"])
        if self.optimizer is not None and saved["optimizer"] is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
        self.state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        return True

    # -- one epoch ------------------------------------------------------------------------------
    def batches(self, epoch: int):
        """(batch dict on the device, rows of the global batch) for this rank, in order."""
        dataset = EpochBatches(self.samples, int(self.config["train_batch_size"]), self.seed, epoch,
                               self.dist.rank, self.dist.world)
        workers = int(self.config["num_workers"])
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                             pin_memory=self.dist.device.type == "cuda",
                                             prefetch_factor=4 if workers else None)
        for local, rows in loader:
            yield {k: v.to(self.dist.device, non_blocking=True) for k, v in local.items()}, rows

    def train_epoch(self, epoch: int) -> float:
        self.net.train()
        global_batch = int(self.config["train_batch_size"]) * self.dist.world
        n_batches = len(self.samples) // global_batch + (len(self.samples) % global_batch >= self.dist.world)
        losses = []
        started = time.perf_counter()
        # off a terminal the epoch's log line (fit) is the one line per finished epoch
        with bar(total=n_batches, desc=f"epoch {epoch + 1}", unit="batch", line=False) as progress:
            for local, rows in self.batches(epoch):
                loss = self._loss(local) * (self.dist.world / rows)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.detach())
                self.state["step"] += 1
                if len(losses) % NAN_CHECK_EVERY == 0:
                    self._check_finite(losses, epoch)
                    progress.set_postfix(loss=f"{torch.stack(losses[-NAN_CHECK_EVERY:]).mean().item():.4f}",
                                         samples_s=f"{len(losses) * rows / (time.perf_counter() - started):.0f}")
                progress.update(1)
        if not losses:
            return 0.0
        self._check_finite(losses, epoch)
        mean = torch.stack(losses).float().mean()
        if self.dist.world > 1:  # each rank holds its share x W: the global loss is their mean
            torch.distributed.all_reduce(mean)
            mean = mean / self.dist.world
        return float(mean.item())

    def _loss(self, local: dict) -> torch.Tensor:
        """Sum of this rank's per-sample losses. Under compile a short batch is padded to the full
        batch size (fixed shapes for CUDA graphs) and the padding rows weigh 0."""
        if not self.compile:
            with E.autocast(self.dist.device, self.amp):
                per_sample = self.net(local)
            return per_sample.float().sum()
        size = int(self.config["train_batch_size"])
        local, real = pad_rows(local, size) if self.pad_train else (local, size)
        C.step_begin()
        with E.autocast(self.dist.device, self.amp):
            per_sample = self.train_forward(local)
        if real == size:  # a full batch (or an unpadded format): no weights, fewer launches
            return per_sample.float().sum()
        return (per_sample.float() * C.row_weights(real, size, per_sample.device)).sum()

    def _check_finite(self, losses, epoch):
        recent = torch.stack(losses[-NAN_CHECK_EVERY:]).float()
        if self.dist.world > 1:  # a NaN on any rank stops every rank
            torch.distributed.all_reduce(recent)
        bad = (~torch.isfinite(recent)).nonzero()
        if len(bad):
            step = self.state["step"] - len(recent) + int(bad[0, 0]) + 1
            raise NonFiniteLoss(f"training loss is {recent[bad[0, 0]].item()} at step {step} "
                                f"(epoch {epoch + 1}); lower learning_rate or check the release")

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, split: str):
        ranks, top1 = E.score_users(self.model, self.data, split, self.dist.device,
                                    int(self.config["eval_batch_size"]), self.dist.rank,
                                    self.dist.world, precision=self.eval_precision,
                                    scorer=self.scorer, pad_last=self.compile)
        ranks, top1 = self.dist.sum_array(ranks), self.dist.sum_array(top1)
        return E.metrics_from_ranks(ranks[1:], tuple(self.config["topk"])), ranks, top1

    # -- provenance -----------------------------------------------------------------------------
    def record_provenance(self):
        """provenance.json: wall time so far counts every session that worked on this run."""
        self.state["wall_s"] = self.wall_before + time.perf_counter() - self.session_started
        if self.dist.main:
            write_provenance(self.folder, provenance(
                self.release, self.dist.device, self.seed, self.state["started_at"],
                self.state["epoch_wall_s"], self.state["wall_s"], self.dist.world))

    # -- the whole run --------------------------------------------------------------------------
    def fit(self) -> Path:
        epochs = int(self.config["epochs"]) if self.trainable else 0
        metric = self.config["valid_metric"]
        self.session_started = time.perf_counter()
        if self.dist.main:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.folder / "config.yaml", yaml.safe_dump(self.config, sort_keys=True))
            if hasattr(self.log, "attach"):
                self.log.attach(self.folder / "train.log")
        self.dist.barrier()
        if self.try_resume():
            self.log(f"resuming {self.folder} after epoch {self.state['epoch']}")
        self.state.setdefault("started_at", iso_utc())  # runs saved before provenance lack these
        self.state.setdefault("epoch_wall_s", [])
        self.wall_before = float(self.state.setdefault("wall_s", 0.0))
        self.record_provenance()
        patience = int(self.config["stopping_step"])
        while self.state["epoch"] < epochs and self.state["bad_epochs"] <= patience:
            epoch = self.state["epoch"]
            started = time.perf_counter()
            loss = self.train_epoch(epoch)
            train_s = time.perf_counter() - started
            valid, _, _ = self.evaluate("validation")
            test = self.evaluate("test")[0] if self.config["test_each_epoch"] else None
            self.state["history"].append({"epoch": epoch + 1, "loss": round(loss, 6),
                                          "train_seconds": round(train_s, 3),
                                          "validation": valid, "test": test})
            if valid[metric] >= self.state["best"]:  # ties count as improvements
                self.state.update(best=valid[metric], best_epoch=epoch + 1, bad_epochs=0)
                if self.dist.main:
                    _save(self.model.state_dict(), self.folder / "best.pt")
            else:
                self.state["bad_epochs"] += 1
            self.state["epoch"] = epoch + 1
            self.state["epoch_wall_s"].append(time.perf_counter() - started)
            self.record_provenance()
            self.save_last()
            self.log(f"epoch {epoch + 1}: loss {loss:.5f}, validation {metric} {valid[metric]:.7f} "
                     f"(best {self.state['best']:.7f} at epoch {self.state['best_epoch']}), "
                     f"{train_s:.1f}s")
        return self.finish()

    def finish(self) -> Path:
        best = self.folder / "best.pt"
        if best.exists():
            self.model.load_state_dict(torch.load(best, map_location=self.dist.device))
        elif self.dist.main:  # nothing trained (Random, Pop, --epochs 0): the initial model is "best"
            _save(self.model.state_dict(), best)
        valid, _, _ = self.evaluate("validation")
        test, ranks, top1 = self.evaluate("test")
        if self.dist.main:
            metrics = {"model": self.config["model"], "release": self.release.resolve().name,
                       "run": self.folder.name,
                       "users": self.data.n_users, "items": self.data.n_items,
                       "best_epoch": self.state["best_epoch"], "epochs_run": self.state["epoch"],
                       "per_epoch": self.state["history"],
                       "final": {"validation": valid, "test": test,
                                 "test_sd": E.per_user_sd(ranks[1:], tuple(self.config["topk"]))}}
            groups = E.popularity_groups(self.data, ranks, top1)
            atomic_write_text(self.folder / "metrics.json", json.dumps(metrics, indent=1))
            atomic_write_text(self.folder / "groups.json", json.dumps(groups, indent=1))
            self.log("final test: " + ", ".join(f"{k} {v:.7f}" for k, v in test.items()))
        self.record_provenance()
        self.dist.barrier()
        return self.folder


def train(release, model: str, out="runs", overrides=None, device="cpu", init_from=None) -> Path:
    """Train and evaluate one model on one release (starting from the weights of the run folder or
    .pt file `init_from` where names and shapes match); returns the run folder."""
    log = RunLog()  # train.log: timestamped lines, flushed as they are logged
    run = Run(release, model, out, overrides, device, log=log, init_from=init_from)
    try:
        return run.fit()
    finally:
        log.close()
        run.close()
