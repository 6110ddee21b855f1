"""The one error type users see. The CLI prints its message as a single line and exits with code 2."""

from __future__ import annotations


class CodesignError(Exception):
    """Bad input or an impossible request: the message names the bad value and what was expected."""


class ConfigError(CodesignError):
    """An experiment file that does not validate; the message starts with the key path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class InfeasibleError(CodesignError):
    """A budget or constraint set that no point satisfies; the message says the smallest feasible value."""


class CodesignWarning(UserWarning):
    """Something the user must know that does not stop the command (a repaired file, a fallback); the CLI
    prints its message as one line."""
