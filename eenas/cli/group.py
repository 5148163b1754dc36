"""The ``eenas`` command group and its entry point: user errors (:class:`~eenas.errors.EenasError`) and
usage errors become one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import sys

import click

from eenas import __version__
from eenas.errors import EenasError
from eenas.malloc import keep_freed_memory


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eenas")
@click.option("-v", "--verbose", count=True, help="Debug log output.")
def cli(verbose: int) -> None:
    """Hardware-aware NAS of early-exit networks for multi-core edge accelerators."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    keep_freed_memory()  # before any training: pretraining spends most of its time in page faults otherwise
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors too: one line, like every other user error
        click.echo(f"eenas: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EenasError as exc:
        click.echo(f"eenas: error: {exc}", err=True)
        sys.exit(exc.exit_code)
