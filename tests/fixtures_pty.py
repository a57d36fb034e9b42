"""A pseudo-terminal standing in for a serial scanner's cable."""

from __future__ import annotations

import os
import tty
from pathlib import Path


class Pty:
    """A pty pair whose slave is reached through a symlink we can re-point (replug)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None
        self.plug()

    def plug(self) -> None:
        """Open a new pty pair (raw) and point the link at its slave."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        """Close both ends: reads on the slave fail as on a USB unplug."""
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def write(self, data: bytes) -> None:
        """Write ``data`` as the scanner would send it."""
        assert self.master is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]
