"""`pixelrec validate-baselines`: run a suite of baselines on a release and check it."""
import sys

import click


@click.command("validate-baselines")
@click.option("--release", required=True, type=click.Path(path_type=str), help="release folder")
@click.option("--suite", default="quick", show_default=True,
              help="quick | standard | paper, or a suite .yaml file")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--epochs", type=int, default=None, help="cap the epochs of every trained model")
@click.option("--out", default="runs", show_default=True, help="folder of run folders")
def validate_baselines(release, suite, device, epochs, out):
    """Train and evaluate a suite on RELEASE, check the paper's orderings, write report.html.

    Exits 1 when a check fails (and says which), 2 on bad input.
    """
    from pixelrec_data.baselines.validate import leaderboard_text, validate
    folder, results = validate(release, suite, out=out, device=device, epochs=epochs)
    click.echo(leaderboard_text(results))
    click.echo(f"report: {folder / 'report.html'}")
    if not results["passed"]:
        failed = [c["detail"] for c in results["checks"] if c["status"] == "failed"]
        click.echo(f"validation failed: {'; '.join(failed)}", err=True)
        sys.exit(1)
