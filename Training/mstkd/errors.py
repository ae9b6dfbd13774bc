"""The one exception type for errors a user can cause and fix."""

from __future__ import annotations


class MSTKDError(Exception):
    """A problem with the user's input or environment; the message says what to do."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (library messages run long)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


# The exit status of a command (or the status of a warm-engine request) that failed with an MSTKDError;
# any other failure is 1.
USER_ERROR_STATUS = 2
