"""``python -m polyfis``: the command line."""

from polyfis.cli import main

if __name__ == "__main__":
    main()
