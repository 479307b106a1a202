"""Errors a user can cause, and the exit codes msgops promises.

Exit codes (documented in the README): 0 every gate passed; 1 a gated check failed; 2 a check could
not be evaluated; 3 the configuration, a checklist or other user input is invalid.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_EVALUATED = 2
EXIT_BAD_INPUT = 3


class UserError(Exception):
    """A problem the user can fix. Printed as one line naming the fix; never a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
