import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pixelrec_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "Usage: pixelrec" in out
    from pixelrec_data.cli import COMMANDS
    assert all(name in out for name in COMMANDS)  # every command's module loads


def test_unknown_command_exits_2():
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "no-such-command"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
