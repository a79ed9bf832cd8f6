"""Run `pixelrec` and kill it (SIGKILL, as a power cut or the OOM killer would) at a point of the
one finishing entry, pipelines.finish. The product carries no fault injection: this wraps the
functions the entry calls, in the child process only.

    python tests/crashing.py POINT [pixelrec arguments]

POINT names a step: `staged:<release>` (a release completed in the work folder), `journal` (the
journal written, nothing moved yet), `swapped:<folder>` (a folder renamed into place), `moved:<part>`
(a file moved into place), `manifest:<release>`, `card:<release>`, `sequences:<release>`; or
`step:<n>`, the n-th of these steps, whatever it is (random points, from a seed). POINT `count`
kills nothing and prints the number of steps the run took.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(point: str, *args) -> list[str]:
    """The argv that runs `pixelrec *args`, killed at `point`."""
    return [sys.executable, str(Path(__file__).resolve()), point, *map(str, args)]


def install(point: str) -> None:
    from pipelines import finish, sequences

    steps = [0]
    if point == "count":
        atexit.register(lambda: print(f"steps: {steps[0]}", file=sys.stderr))

    def hit(name: str) -> None:
        steps[0] += 1
        if name == point or point == f"step:{steps[0]}":
            os.kill(os.getpid(), signal.SIGKILL)

    def after(function, label):
        def wrapped(*args, **kwargs):
            out = function(*args, **kwargs)
            hit(label(*args, **kwargs))
            return out
        return wrapped

    def before(function, label):
        def wrapped(*args, **kwargs):
            hit(label(*args, **kwargs))
            return function(*args, **kwargs)
        return wrapped

    def folder_name(path, *_, name=None, **__):
        return name or Path(path).name

    finish.Staging.complete = after(finish.Staging.complete, lambda self, name, *a, **k: f"staged:{name}")
    finish._apply_journal = before(finish._apply_journal, lambda root: "journal")
    finish.swap_dir = after(finish.swap_dir, lambda new, final: f"swapped:{Path(final).name}")
    finish._move = after(finish._move, lambda source, target: f"moved:{Path(target).name}")
    finish.write_manifest = before(finish.write_manifest,
                                   lambda folder, name, *a, **k: f"manifest:{name}")
    finish.refresh_manifest = before(finish.refresh_manifest,
                                     lambda folder, *a, **k: f"manifest:{Path(folder).name}")
    finish.write_release_card = before(finish.write_release_card,
                                       lambda folder, name=None: f"card:{folder_name(folder, name=name)}")
    # finish loads pipelines.sequences when it has sequences to make, and calls it by module
    sequences.build_sequences = before(sequences.build_sequences,
                                       lambda folder, *a, **k: f"sequences:{Path(folder).name}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    install(sys.argv[1])
    from pixelrec_data.cli import main

    sys.argv = ["pixelrec", *sys.argv[2:]]
    main()
