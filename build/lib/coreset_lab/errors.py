"""The one exception type that reaches the user as a single clear line instead of a traceback."""


class UserError(Exception):
    """Bad input the user can fix: the message names the problem and the fix.

    The CLI prints it on one line and exits with status 2; anything else is a bug and keeps its
    traceback.
    """
