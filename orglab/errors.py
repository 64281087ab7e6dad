"""The one exception type that reaches the user as a single sentence.

Anything raised as `OrglabError` is bad input or a broken environment that the user can fix; the CLI
prints its message (one sentence: what is wrong, how to fix it) and exits non-zero. Every other
exception is a bug in orglab and keeps its traceback.
"""


class OrglabError(Exception):
    """A problem the user can fix, described in one sentence."""
