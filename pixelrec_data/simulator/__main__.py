"""`python -m pixelrec_data.simulator ...`: the same options and behaviour as `pixelrec simulate`."""
import argparse
import sys

from schemas.errors import InputError

from .options import OPTIONS, simulate, stderr_log


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pixelrec_data.simulator", description=(
        "Serve a deterministic synthetic video platform over the real API's paths and shapes."))
    for option in OPTIONS:
        if option.type is None:
            parser.add_argument(f"--{option.name}", action="append", default=[],
                                metavar=option.metavar, help=option.help)
        else:
            parser.add_argument(f"--{option.name}", type=option.type, default=option.default,
                                metavar=option.metavar, help=option.help)
    return parser


def main(argv=None) -> int:
    values = vars(_parser().parse_args(argv))
    from pixelrec_data.progress import step
    try:
        simulate(values, announce=lambda line: print(line, flush=True), log=stderr_log, step=step)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
