"""The `pixelrec` command: a click group whose subcommands live in pixelrec_data/commands/.

Subcommands are imported lazily (torch, scrapy and duckdb are slow to import), and every InputError
raised below becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from schemas.errors import InputError, one_line

# command name -> "module:attribute" under pixelrec_data.commands
COMMANDS = {
    "simulate": "simulate:simulate",
    "generate-raw": "synthetic:generate_raw",
    "crawl": "crawl:crawl",
    "build-release": "release:build_release",
    "build-splits": "release:build_splits",
    "stats": "release:stats",
    "import-official": "release:import_official",
    "export": "release:export",
    "verify": "release:verify",
    "fetch-covers": "covers:fetch_covers",
    "pack-covers": "pack_covers:pack_covers",
    "publish": "mirror:publish",
    "download": "mirror:download",
    "prepare-images": "images:prepare_images",
    "extract-features": "features:extract_features",
    "train": "train:train",
    "validate-baselines": "validate:validate_baselines",
    "demo": "demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(f"pixelrec_data.commands.{module_name}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pixelrec", prog_name="pixelrec")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress output (the same as PIXELREC_QUIET=1); results and errors still print.")
def cli(quiet):
    """Build, ship, load and validate PixelRec-style image-recommendation datasets.

    Progress: a bar on a terminal, one line per finished step otherwise (pipes, files, CI).
    """
    if quiet:  # through the environment, so child processes (the demo's steps) are quiet too
        os.environ["PIXELREC_QUIET"] = "1"


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="pixelrec", standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted: rerun the same command to continue", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # disk full, permissions: the file and the reason, on one line
        click.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:
        if type(exc).__module__.lstrip("_").partition(".")[0] != "duckdb":
            raise
        # DuckDB's own errors (out of disk or memory while spilling, ...): its first line says why
        click.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
