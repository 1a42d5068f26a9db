"""`python -m tinyhar`: the `tinyhar` command."""

from tinyhar.cli import main

main(prog_name="tinyhar")
