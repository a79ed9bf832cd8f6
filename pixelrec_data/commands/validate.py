"""`pixelrec validate-baselines`: run a suite of baselines on a release and check it."""
import sys

import click


def _weights(values) -> dict:
    from schemas.errors import InputError
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--encoder-weights {value!r}: expected ENCODER=PATH, e.g. "
                             f"ViT-B-32=/models/ViT-B-32.pt")
        out[name] = path
    return out


@click.command("validate-baselines")
@click.option("--release", required=True, type=click.Path(path_type=str), help="release folder")
@click.option("--suite", default="quick", show_default=True,
              help="quick | standard | paper | cold, or a suite .yaml file")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--epochs", type=int, default=None, help="cap the epochs of every trained model")
@click.option("--out", default="runs", show_default=True, help="folder of run folders")
@click.option("--encoder-weights", "encoder_weights", multiple=True, metavar="ENCODER=PATH",
              help="local pre-trained weights for every image entry using ENCODER (RN50, ViT-B-32, ...); "
                   "repeatable. Each PixelNet run gets --set encoder_weights=PATH, each ViNet "
                   "feature file is extracted with them.")
def validate_baselines(release, suite, device, epochs, out, encoder_weights):
    """Train and evaluate a suite on RELEASE, check the paper's claims, write report.html.

    On a release that is the official data, each run the paper reports is also held to a band
    around the published figure. Exits 1 when a check fails (and says which), 2 on bad input.
    """
    from pixelrec_data.baselines.validation.validate import leaderboard_text, validate
    folder, results = validate(release, suite, out=out, device=device, epochs=epochs,
                               encoder_weights=_weights(encoder_weights))
    click.echo(leaderboard_text(results))
    click.echo(f"report: {folder / 'report.html'}")
    if not results["passed"]:
        failed = [c["detail"] for c in results["checks"] + results.get("bands", [])
                  if c["status"] == "failed"]
        click.echo(f"validation failed: {'; '.join(failed)}", err=True)
        sys.exit(1)
