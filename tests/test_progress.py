"""Progress output: bars only on a terminal; a pipe gets one line per finished step and never a
carriage return; PIXELREC_QUIET / --quiet silence it."""
import os
import subprocess
import sys

from pixelrec_data import progress
from test_loader_helpers import make_release


def test_bar_off_a_terminal_prints_one_summary_line(capsys, monkeypatch):
    monkeypatch.delenv("PIXELREC_QUIET", raising=False)
    with progress.bar(total=3, desc="work", unit="item") as bar:
        for _ in range(3):
            bar.update(1)
        bar.set_postfix(loss="0.5")
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1
    assert err.startswith("work: 3/3 item in ") and "loss 0.5" in err


def test_quiet_prints_nothing(capsys, monkeypatch):
    monkeypatch.setenv("PIXELREC_QUIET", "1")
    with progress.bar(total=2, desc="work") as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def pixelrec(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_piped_command_log_has_no_carriage_returns(tmp_path):
    release = make_release(tmp_path, "pixel200k")
    env = {k: v for k, v in os.environ.items() if k != "PIXELREC_QUIET"}
    proc = pixelrec("pack-covers", "--release", release, env=env)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "\r" not in log and "\x1b[" not in log
    assert [line for line in proc.stderr.splitlines() if line.startswith("pack-covers: 8/8 cover in ")]
    quiet = pixelrec("--quiet", "pack-covers", "--release", release, env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
