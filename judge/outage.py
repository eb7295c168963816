"""Log a failing dependency once per outage, not once per call, and say when it recovers."""

from __future__ import annotations

import logging


class OutageLog:
    """First failure: a warning with the traceback; repeats: silent; first success after: "recovered"."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self.down = False

    def failed(self, message: str, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            self._log.warning("%s: %s (%s: %s); further failures are not logged until it recovers",
                              self._what, message, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                              exc_info=exc)  # fmt: skip

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            self._log.warning("%s recovered", self._what)
