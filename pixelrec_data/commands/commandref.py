"""docs/COMMANDS.md, generated from the click help of every `pixelrec` command.

    python -m pixelrec_data.commands.commandref > docs/COMMANDS.md

tests/test_docs.py fails when the file and the commands drift apart.
"""
from __future__ import annotations

import click

from pixelrec_data.cli import cli


def render() -> str:
    # a fixed width: the file must not depend on the terminal it was generated in
    ctx = click.Context(cli, info_name="pixelrec", terminal_width=100, max_content_width=100)
    parts = ["# `pixelrec` command reference",
             "",
             "Generated from the commands' own `--help` by `python -m pixelrec_data.commands.commandref`; "
             "do not edit by hand.",
             "",
             "```text", cli.get_help(ctx), "```", ""]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx, terminal_width=100,
                            max_content_width=100)
        parts += [f"## pixelrec {name}", "", "```text", command.get_help(sub), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
