"""`pixelrec simulate`: serve the bundled platform simulator on 127.0.0.1, or dump its ground truth."""
from __future__ import annotations

import sys

import click

from schemas.errors import InputError


def _positive(name: str, value: int) -> None:
    if value is None or value <= 0:
        raise InputError(f"--{name} must be a positive integer, got {value}")


@click.command("simulate")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port on 127.0.0.1 (0: any free port).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic world and of the faults.")
@click.option("--users", type=int, default=3000, show_default=True, help="Users in the world.")
@click.option("--videos", type=int, default=2000, show_default=True, help="Videos in the world.")
@click.option("--faults", default=None, help='Fault rates, e.g. "5xx=0.05,slow=0.02,truncate=0.02,'
              'corrupt_cover=0.05,missing_cover=0.02" (also challenge=, slow_s=).')
@click.option("--rate", type=float, default=None, help="Requests/s allowed per client on the API (default: unlimited).")
@click.option("--burst", type=float, default=None, help="Token-bucket depth (default: max(1, rate)).")
@click.option("--block-s", type=float, default=1.0, show_default=True, help="How long a client stays blocked (412) after exceeding the rate.")
@click.option("--abuse-limit", type=int, default=20, show_default=True, help="Requests while blocked before the -352 challenge.")
@click.option("--challenge-s", type=float, default=60.0, show_default=True, help="How long the -352 challenge lasts.")
@click.option("--knob", "knobs", multiple=True, metavar="NAME=VALUE",
              help="World knob of the synthetic generator (repeatable), e.g. hot_videos=2.")
@click.option("--dump-truth", "dump_dir", type=click.Path(file_okay=False), default=None,
              help="Write DIR/videos.parquet, events.parquet, status.parquet and exit instead of serving.")
def simulate(port, seed, users, videos, faults, rate, burst, block_s, abuse_limit, challenge_s, knobs, dump_dir):
    """Serve a deterministic synthetic video platform over the real API's paths and shapes."""
    from pixelrec_data.progress import step
    from pixelrec_data.simulator import runner
    from pixelrec_data.simulator.faults import FaultSpec

    _positive("users", users)
    _positive("videos", videos)
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {port}")
    for name, value in (("rate", rate), ("burst", burst), ("block-s", block_s), ("challenge-s", challenge_s)):
        if value is not None and value <= 0:
            raise InputError(f"--{name} must be positive, got {value}")
    if abuse_limit < 0:
        raise InputError(f"--abuse-limit must be at least 0, got {abuse_limit}")
    spec = FaultSpec.parse(faults)
    # progress goes to stderr: stdout carries only the "serving <url>" line that scripts read
    with step(f"generating world (seed {seed}, {users} users, {videos} videos)", log=_log):
        world = runner.build_world(seed, users, videos, **_parse_knobs(knobs))
    if dump_dir:
        from pixelrec_data.simulator.truth import dump_truth
        paths = dump_truth(world, dump_dir)
        click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
        return
    limiter_options = {"burst": burst, "block_s": block_s, "abuse_limit": abuse_limit,
                       "challenge_s": challenge_s}
    simulator = runner.make_simulator(seed, faults=spec, rate=rate, world=world,
                                      limiter_options=limiter_options)
    try:
        runner.serve(simulator, port, announce=_announce)
    except OSError as exc:
        raise InputError(f"cannot serve on 127.0.0.1:{port} ({exc.strerror or exc})") from None


def _parse_knobs(items) -> dict:
    knobs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--knob: '{item}' is not NAME=VALUE")
        try:
            knobs[name.strip()] = int(value)
        except ValueError:
            try:
                knobs[name.strip()] = float(value)
            except ValueError:
                raise InputError(f"--knob {name}: '{value}' is not a number") from None
    return knobs


def _announce(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def _log(message: str) -> None:
    from pixelrec_data.progress import quiet
    if not quiet():
        click.echo(message, err=True)
