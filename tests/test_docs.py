"""The README's commands exist and their --help works; docs/COMMANDS.md matches the click help."""
import re
import subprocess
import sys
from pathlib import Path

from pixelrec_data.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> set[str]:
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"(?<![\w-])pixelrec ([a-z][a-z-]+)", text)) - {"toolkit", "data"}


def test_readme_commands_exist_and_help_works():
    names = _readme_commands()
    assert names, "the README shows no pixelrec command"
    for name in sorted(names):
        assert name in COMMANDS, f"README mentions unknown command 'pixelrec {name}'"
        proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", name, "--help"], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"pixelrec {name} --help: {proc.stderr[-500:]}"
        assert f"Usage: pixelrec {name}" in proc.stdout


def test_make_targets_in_readme():
    text = (ROOT / "README.md").read_text()
    assert text.index("make demo") < 600 and text.index("make test") < 600


def test_command_reference_is_in_sync():
    # rendered in a fresh process, as a user regenerates it: click caches each command's help
    # option on first use, so an in-process render would depend on the tests that ran before
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.commands.commandref"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert (ROOT / "docs" / "COMMANDS.md").read_text() == proc.stdout, \
        "docs/COMMANDS.md is stale: python -m pixelrec_data.commands.commandref > docs/COMMANDS.md"
