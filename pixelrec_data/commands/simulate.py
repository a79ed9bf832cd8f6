"""`pixelrec simulate`: serve the bundled platform simulator on 127.0.0.1, or dump its ground truth."""
from __future__ import annotations

import sys

import click

from pixelrec_data.simulator.options import OPTIONS, simulate as run_simulator


def _announce(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def _log(message: str) -> None:
    from pixelrec_data.progress import quiet
    if not quiet():
        click.echo(message, err=True)


def _with_options(command):
    for option in reversed(OPTIONS):
        flag = f"--{option.name}"
        if option.type is None:
            command = click.option(flag, "knob", multiple=True, metavar=option.metavar,
                                   help=option.help)(command)
        elif option.name == "dump-truth":
            command = click.option(flag, "dump_truth", type=click.Path(file_okay=False),
                                   default=None, metavar=option.metavar, help=option.help)(command)
        else:
            command = click.option(flag, type=option.type, default=option.default,
                                   show_default=option.default is not None, help=option.help)(command)
    return command


@click.command("simulate")
@_with_options
def simulate(**values):
    """Serve a deterministic synthetic video platform over the real API's paths and shapes."""
    from pixelrec_data.progress import step
    run_simulator(values, announce=_announce, log=_log, step=step)
