"""Entry point for `python -m vlmkit`."""

from vlmkit.cli import main

main()
