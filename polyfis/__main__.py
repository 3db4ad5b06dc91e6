"""``python -m polyfis``: the command line."""

from polyfis.cli import main

main()
