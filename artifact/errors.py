"""The one exception type that reaches a user: a one-line message naming the problem and the fix."""


class UserError(Exception):
    """Bad input (config, data, target, flag). The CLI prints `error: <message>` and exits 2."""
