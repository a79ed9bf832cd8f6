"""`pixelrec demo`: the whole product end to end on the bundled simulator."""
from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-work"), show_default=True,
              help="Folder for the demo's raw crawl, releases and runs; a rerun continues there.")
@click.option("--scale", type=click.Choice(["tiny", "small", "medium"]), default="small",
              show_default=True, help="Size of the simulated platform.")
@click.option("--suite", default=None,
              help="validate-baselines suite (default: quick), or a suite .yaml file")
def demo(workdir, scale, suite):
    """Simulate the platform, crawl it, build the release, fetch covers, validate baselines.

    Rerunning continues from the first unfinished step; exits non-zero if a validation check fails.
    """
    from pixelrec_data.commands.demo_steps import run_demo
    run_demo(workdir, scale, suite=suite)
