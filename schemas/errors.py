"""The one error type every layer raises for bad input.

Commands catch it and print its message as one line, exiting with status 2 (see pixelrec_data.cli).
It lives in schemas/ because schemas/ is the bottom layer that every other package may import.
"""


class InputError(Exception):
    """Bad input: the message is one line that names the file (or argument) and the problem."""

    exit_code = 2


class SchemaError(InputError):
    """A table that does not match its schema."""
