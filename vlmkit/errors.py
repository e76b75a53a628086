"""The VlmkitError hierarchy: errors a user can act on, each with a hint (stdlib only)."""

from __future__ import annotations


class VlmkitError(Exception):
    """An error caused by input or configuration, shown to the user as one line plus a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        # Errors raised in worker processes cross back by pickle: keep the hint.
        return (type(self), (self.message, self.hint))


class UsageError(VlmkitError):
    """A flag or option has a value that cannot work (names the flag)."""


class InputError(VlmkitError):
    """An input file is missing, malformed or inconsistent (names the file and line)."""


class MissingExtraError(VlmkitError):
    """A command needs an optional dependency group that is not installed."""


class GateFailed(VlmkitError):
    """A --fail-under / --fail-over threshold was not met."""
