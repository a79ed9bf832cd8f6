"""The one error type every layer raises for bad input.

Commands catch it and print its message as one line, exiting with status 2 (see pixelrec_data.cli).
It lives in schemas/ because schemas/ is the bottom layer that every other package may import.
"""


class InputError(Exception):
    """Bad input: the message is one line that names the file (or argument) and the problem."""

    exit_code = 2


class SchemaError(InputError):
    """A table that does not match its schema."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its class name when it has none), cut to `limit`."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if limit is None else text[:limit]


def split_assignment(item: str, option: str, form: str = "NAME=VALUE") -> tuple[str, str]:
    """'name=value' -> ('name', 'value') for options like --set and --knob; one-line error otherwise."""
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise InputError(f"{option}: {item!r} is not {form}")
    return name.strip(), value
