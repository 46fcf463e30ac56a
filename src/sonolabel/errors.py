"""User-facing errors.

Every failure a user can cause (a bad file, a locked project, a store from a newer version)
is raised as a :class:`SonolabelError` that says what went wrong, which file, and what to do.
The CLI prints it as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class SonolabelError(Exception):
    """An error the user can act on: ``what`` went wrong with ``path``, and ``hint`` says what to do."""

    def __init__(self, what: str, path: str | PathLike | None = None, hint: str | None = None):
        self.what = what
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what if self.path is None else f"{self.path}: {self.what}"]
        if self.hint:
            parts.append(self.hint)
        return " — ".join(parts)


class InputError(SonolabelError):
    """A source file or folder cannot be used as given (unreadable, wrong size, unknown colours...)."""


class StoreError(SonolabelError):
    """The project store is missing, damaged, or asked for something it does not hold."""


class SchemaError(StoreError):
    """The project store was written by a newer sonolabel than this one."""


class LockError(StoreError):
    """Another process holds the project's write lock."""
