"""`pixelrec train`: train and evaluate one baseline on one release (see docs/TRAINER.md)."""
from __future__ import annotations

import os

import click


@click.command("train")
@click.option("--release", "release", required=True, type=click.Path(path_type=str),
              help="release folder (items.parquet + splits/)")
@click.option("--model", required=True, help="model name, e.g. sasrec, mf, pop, random")
@click.option("--epochs", type=int, default=None, help="maximum epochs (default: the config's 200)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="override a config value (repeatable), e.g. --set embedding_size=64")
@click.option("--out", default="runs", show_default=True, help="folder of run folders")
@click.option("--seed", type=int, default=None, help="random seed (default: the config's 2020)")
@click.option("--init-from", "init_from", default=None, metavar="RUN",
              help="start from another run's best.pt (a run folder or .pt file): every tensor whose "
                   "name and shape match is loaded, and the run says which were not")
def train(release, model, epochs, device, settings, out, seed, init_from):
    """Train MODEL on RELEASE with the paper's protocol; writes OUT/<run id>/.

    Rerunning the same command resumes from the last finished epoch. Under torchrun each process
    takes one device (DDP; gloo on CPU, NCCL on CUDA).
    """
    from pixelrec_data.baselines.config import parse_overrides, resolve_config
    from pixelrec_data.baselines.models import MODELS

    overrides = parse_overrides(settings)
    if epochs is not None:
        overrides["epochs"] = epochs
    if seed is not None:
        overrides["seed"] = seed
    if model.lower() in MODELS:  # a bad --set fails here, in a blink, before torch is loaded
        resolve_config(model.lower(), overrides)
    from pixelrec_data.baselines.trainer.train import train as run_training

    folder = run_training(release, model, out=out, overrides=overrides, device=device, init_from=init_from)
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"run folder: {folder}")
