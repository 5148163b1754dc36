"""User-facing errors.

Anything the user can fix (a bad file, a missing dataset, an impossible option) raises
:class:`EenasError`; the CLI prints its message as one line and exits with code 2.
"""


class EenasError(Exception):
    """An error caused by the user's input, reported without a traceback."""

    exit_code = 2
