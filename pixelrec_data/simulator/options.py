"""The simulator's options, as data, and the one flow that applies them (serve, or dump the truth).

`pixelrec simulate` (click) and `python -m pixelrec_data.simulator` (argparse) both read OPTIONS, so
the two entry points cannot drift apart.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from schemas.errors import InputError, split_assignment


@dataclass(frozen=True)
class Option:
    name: str          # the long flag without dashes
    type: type | None  # None: a repeatable NAME=VALUE option
    default: object
    help: str
    metavar: str | None = None


OPTIONS = (
    Option("port", int, 8000, "TCP port on 127.0.0.1 (0: any free port)."),
    Option("seed", int, 0, "Seed of the synthetic world and of the faults."),
    Option("users", int, 3000, "Users in the world."),
    Option("videos", int, 2000, "Videos in the world."),
    Option("faults", str, None, 'Fault rates, e.g. "5xx=0.05,slow=0.02,truncate=0.02,'
           'corrupt_cover=0.05,missing_cover=0.02" (also challenge=, slow_s=).'),
    Option("rate", float, None, "Requests/s allowed per client on the API (default: unlimited)."),
    Option("burst", float, None, "Token-bucket depth (default: max(1, rate))."),
    Option("block-s", float, 1.0, "How long a client stays blocked (412) after exceeding the rate."),
    Option("abuse-limit", int, 20, "Requests while blocked before the -352 challenge."),
    Option("challenge-s", float, 60.0, "How long the -352 challenge lasts."),
    Option("knob", None, (), "World knob of the synthetic generator (repeatable), e.g. hot_videos=2.",
           "NAME=VALUE"),
    Option("dump-truth", str, None, "Write DIR/videos.parquet, events.parquet, status.parquet and "
           "exit instead of serving.", "DIR"),
)


def _positive(name: str, value) -> None:
    if value is None or value <= 0:
        raise InputError(f"--{name} must be a positive integer, got {value}")


def parse_knobs(items) -> dict:
    knobs = {}
    for item in items:
        name, value = split_assignment(item, "--knob")
        try:
            knobs[name] = int(value)
        except ValueError:
            try:
                knobs[name] = float(value)
            except ValueError:
                raise InputError(f"--knob {name}: '{value}' is not a number") from None
    return knobs


def check(values: dict) -> None:
    """One-line errors for values no simulator can run with."""
    _positive("users", values["users"])
    _positive("videos", values["videos"])
    if not 0 <= values["port"] <= 65535:
        raise InputError(f"--port must be in 0..65535, got {values['port']}")
    for name in ("rate", "burst", "block_s", "challenge_s"):
        if values[name] is not None and values[name] <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {values[name]}")
    if values["abuse_limit"] < 0:
        raise InputError(f"--abuse-limit must be at least 0, got {values['abuse_limit']}")


def simulate(values: dict, announce, log, step) -> None:
    """Build the world, then serve it in the foreground (or dump its ground truth and return).

    `values` maps option names (underscores) to values; `announce` prints the "serving <url>" line
    scripts read (stdout), `log` progress (stderr), `step` a context manager timing one step.
    """
    from . import runner
    from .faults import FaultSpec

    check(values)
    spec = FaultSpec.parse(values["faults"])
    seed, users, videos = values["seed"], values["users"], values["videos"]
    with step(f"generating world (seed {seed}, {users} users, {videos} videos)", log=log):
        world = runner.build_world(seed, users, videos, **parse_knobs(values["knob"]))
    if values["dump_truth"]:
        from .truth import dump_truth
        paths = dump_truth(world, values["dump_truth"])
        announce(f"wrote {', '.join(str(p) for p in paths.values())}")
        return
    limiter_options = {"burst": values["burst"], "block_s": values["block_s"],
                       "abuse_limit": values["abuse_limit"], "challenge_s": values["challenge_s"]}
    simulator = runner.make_simulator(seed, faults=spec, rate=values["rate"], world=world,
                                      limiter_options=limiter_options)
    port = values["port"]
    try:
        runner.serve(simulator, port, announce=announce)
    except OSError as exc:
        raise InputError(f"cannot serve on 127.0.0.1:{port} ({exc.strerror or exc})") from None


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
