"""Logging to stdout in a form journald reads well.

Under systemd (``$JOURNAL_STREAM`` is set) each line starts with the
``<N>`` syslog priority prefix, which journald turns into the entry's
priority, and carries no timestamp (the journal adds one). Elsewhere lines
get an ISO timestamp for a person reading a terminal.
"""

from __future__ import annotations

import logging
import os
import sys

from hubagent.errors import DiskFull

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class OnceForDiskFull(logging.Filter):
    """Drop the tracebacks a full disk causes everywhere a write fails.

    The store logs the moment the disk fills (and when space returns) once,
    and raises the ``disk_full`` alert; every later write refused for that
    reason would otherwise log its own traceback from wherever it was tried.
    At debug level they are kept, as one line each.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless it only reports a refused write on a full disk."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, DiskFull):
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.msg, record.args = f"{record.getMessage()}: {exc}", None
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class JournalFormatter(logging.Formatter):
    """Prefix each line with its syslog priority (``<6>``)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record, one line per message line."""
        prio = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def configure(level: str = "info", stream=None) -> None:  # type: ignore[no-untyped-def]
    """Configure the root logger; called only by the command-line entry point."""
    handler = logging.StreamHandler(stream or sys.stdout)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(OnceForDiskFull())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho and gpiozero are chatty at debug; our own debug is what a user wants.
    for noisy in ("paho", "PIL"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.INFO))
