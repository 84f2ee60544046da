"""User-facing errors: the CLI prints them as one clear line and exits non-zero, no traceback."""


class CardiobenchError(Exception):
    """A problem with the user's input (a file, a config value), not a bug."""


class DataError(CardiobenchError):
    """A data file is missing, unreadable or malformed; the message names the file."""
