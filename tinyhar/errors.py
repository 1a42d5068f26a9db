"""The exception type the command line turns into one line on stderr and an exit code."""

# Exit codes of the `tinyhar` command.
EXIT_FAILED = 1  # the work ran and its verdict is negative (verify or demo did not pass)
EXIT_ERROR = 2  # bad input or a failure the user can act on
EXIT_INTERRUPTED = 130  # Ctrl-C


class TinyharError(Exception):
    """A failure the user can act on; its message is one line: what is wrong and what to do."""

    exit_code = EXIT_ERROR
