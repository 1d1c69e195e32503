"""The one exception type that reaches a user: a one-line message naming the problem and the fix."""

from __future__ import annotations

import sys


class UserError(Exception):
    """Bad input (config, data, target, flag). The CLI prints `error: <message>` and exits 2."""


def warn(message: str) -> None:
    """One line on stderr for something repaired or worked around (a damaged file set aside, ...)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
