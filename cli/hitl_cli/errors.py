"""Exit codes scripts can rely on: 0 ok, 1 error, 2 usage (click's), 3 conflict."""

import click

OK = 0
ERROR = 1
USAGE = 2
CONFLICT = 3


class Failed(click.ClickException):
    """Something went wrong; the message says what to do about it."""

    exit_code = ERROR


class Conflicted(Failed):
    """The approval was already decided (409) or moved on (412)."""

    exit_code = CONFLICT
