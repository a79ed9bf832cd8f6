"""`pixelrec extract-features`: frozen image features of a release's covers, for ViNet."""
from __future__ import annotations

import click

from pixelrec_data import progress


@click.command("extract-features")
@click.option("--release", "release", required=True, type=click.Path(file_okay=False),
              help="Release folder (items.parquet, covers/ or the prepared image cache).")
@click.option("--encoder", default="RN50", show_default=True,
              help="Tower: open_clip name (RN50, RN50x4, ViT-B-32, ...), timm Swin-T / Swin-B / BEiT, "
                   "or tiny-vit / tiny-rn for smoke runs.")
@click.option("--layer", type=click.Choice(["pooled", "spatial"]), default="pooled", show_default=True,
              help="pooled: one vector per item (VBPR, VisRank); spatial: the last feature map (ACF).")
@click.option("--encoder-weights", type=click.Path(dir_okay=False), default=None,
              help="Local open_clip/CLIP checkpoint; without it the tower is randomly initialised.")
@click.option("--size", type=int, default=None, help="Cover side in pixels (default: the tower's input size).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default=None,
              help="Stored dtype (default float32 for pooled, float16 for spatial).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a randomly initialised tower.")
def extract_features(release, encoder, layer, encoder_weights, size, batch_size, dtype, device, seed):
    """Write <release>/features/<encoder>_<layer>.npy (+ .json, .index.parquet), rows = item ids.

    Resumable: a rerun after a kill continues from the last finished batch (same inputs)."""
    from schemas.errors import InputError
    from pixelrec_data.baselines.models.vinet import features

    if batch_size < 1 or (size is not None and size < 16):
        raise InputError("--batch-size must be >= 1 and --size >= 16")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device is available")
    items = features.release_item_ids(release)
    if encoder_weights is None:  # said first, loudly: the run may take hours and be worthless
        click.echo(f"WARNING: no --encoder-weights given: {encoder} is RANDOMLY INITIALISED and its "
                   f"features carry no pretrained knowledge (fine for a smoke run only). For real "
                   f"features pass --encoder-weights PATH (a local open_clip/CLIP checkpoint).",
                   err=True)
    from pipelines.finish import change_release

    def change(folder, _overlay):  # features/ is local (never in the manifest): kept as written
        with progress.bar(total=len(items), desc=f"features {encoder} {layer}", unit="item") as bar:
            return features.extract(folder, encoder, layer, encoder_weights, size, batch_size,
                                    dtype, device, progress=bar, seed=seed), None, None
    out = change_release(release, "extract-features", change)
    if encoder_weights is None:
        click.echo("note: no --encoder-weights given; features come from a randomly initialised tower",
                   err=True)
    click.echo(str(out))
