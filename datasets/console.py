"""What visionsweep tells a person goes through the `visionsweep` logger: by default to standard output, as the
lines fastai prints; an API user routes it like any library's log (a file, a notebook widget, silence):

    import logging
    logging.getLogger("visionsweep").setLevel(logging.WARNING)        # quiet
    logging.getLogger("visionsweep").handlers = [my_handler]           # elsewhere

Every function that talks also takes `log=` (a callable), which wins over the logger."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("visionsweep")


class _Stdout(logging.Handler):
    """The current sys.stdout at each message (a handler holding the stream it found at import would miss
    redirections: a notebook's capture, contextlib.redirect_stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:
            self.handleError(record)


if not logger.handlers:
    handler = _Stdout()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one copy of each line, not also the root logger's


def say(message: str) -> None:
    """The default `log` of every function that reports progress."""
    logger.info(message)
