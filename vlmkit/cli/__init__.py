"""The `vlmkit` command line: one Typer app, one small module per command.

This package is the only place that prints, exits or imports rich. Commands import the library
lazily inside their bodies so `vlmkit --help` stays fast and never touches heavy libraries.
"""

from __future__ import annotations

import logging
import sys

import typer

from vlmkit import __version__
from vlmkit.cli import console, quiet
from vlmkit.cli.convert import convert_command
from vlmkit.cli.finetune import finetune_command
from vlmkit.cli.infer import infer_command
from vlmkit.cli.pairs import pairs_command
from vlmkit.cli.report import report_command
from vlmkit.cli.score import metrics_command, score
from vlmkit.cli.sweep import sweep_command
from vlmkit.cli.synth import circled_letter, synth_app
from vlmkit.cli.tiny_model import tiny_model_command

app = typer.Typer(
    name="vlmkit",
    help="Adapt vision-language models to text extraction, and prove with honest numbers "
    "that it worked.",
    no_args_is_help=True,
    # Markdown: docstring paragraphs reflow to the terminal, indented examples stay verbatim.
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("score")(console.friendly_errors(score))
app.command("metrics")(console.friendly_errors(metrics_command))
synth_app.command("circled-letter")(console.friendly_errors(circled_letter))
app.add_typer(synth_app, name="synth")
app.command("convert")(console.friendly_errors(convert_command))
app.command("infer")(console.friendly_errors(infer_command))
app.command("tiny-model")(console.friendly_errors(tiny_model_command))
app.command("finetune")(console.friendly_errors(finetune_command))
app.command("pairs")(console.friendly_errors(pairs_command))
app.command("sweep")(console.friendly_errors(sweep_command))
app.command("report")(console.friendly_errors(report_command))


def _version(value: bool) -> None:
    if value:
        console.write_stdout(f"vlmkit {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet.install()
    # Warnings the CLI reports itself (missing predictions) should not print twice.
    logging.getLogger("vlmkit.scoring").setLevel(logging.INFO if verbose else logging.ERROR)


def main() -> None:
    """Console-script entry point."""
    app()
