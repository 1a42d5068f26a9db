"""`python -m tinyhar` and the `tinyhar` command."""

import sys

from tinyhar.errors import EXIT_INTERRUPTED


def run() -> None:
    """The command line, with Ctrl-C while it loads a clean exit too (it imports every command's
    options, a second or so on a slow machine)."""
    try:
        from tinyhar.cli import main  # lazy: a Ctrl-C during the import is caught here
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    main(prog_name="tinyhar")


if __name__ == "__main__":
    run()
