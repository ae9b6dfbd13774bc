"""The one exception type for errors a user can cause and fix."""

from __future__ import annotations


class MSTKDError(Exception):
    """A problem with the user's input or environment; the message says what to do."""
