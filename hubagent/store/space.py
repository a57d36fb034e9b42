"""Disk space for the hub's database: a reserve file and the full-disk state.

An SD card fills up (logs, previews, another program on the Pi). SQLite
then refuses writes, and a restart cannot even create the ``-shm`` and
``-wal`` files it needs to open the database. So the store keeps a small
reserve file (``hubagent.db.reserve``) beside the database while there is
room. When the disk fills, the reserve is deleted: that is enough to open
the database, to checkpoint the WAL, and to run degraded (reads answered,
writes refused with a clear error and a ``disk_full`` alert) instead of
crash-looping. Once space returns the WAL is checkpointed, the reserve is
made again and writes resume.
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)

SQLITE_FULL = 13
SQLITE_IOERR = 10
SQLITE_CANTOPEN = 14


class Space(enum.Enum):
    """Whether the store may write."""

    OK = "ok"
    FULL = "full"


class Reserve(msgspec.Struct, frozen=True):
    """The reserve file beside a database, and how much room writes need."""

    path: Path
    size: int

    @classmethod
    def beside(cls, db_path: Path, size: int) -> "Reserve":
        """The reserve for the database at ``db_path``."""
        return cls(db_path.with_name(db_path.name + ".reserve"), size)

    def free_bytes(self) -> int:
        """Free space on the file system that holds the database."""
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def present(self) -> bool:
        """Whether the reserve file exists at full size."""
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def release(self) -> bool:
        """Delete the reserve file; True if there was one."""
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            log.warning("cannot delete the disk reserve %s: %s", self.path, e)
            return False

    def room_to_resume(self) -> bool:
        """Whether there is room for the reserve and as much again for writes."""
        return self.free_bytes() >= 2 * self.size

    def make(self) -> bool:
        """Write the reserve file (really allocated, not sparse); False if no room."""
        if self.size <= 0 or self.present():
            return True
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                chunk = b"\0" * 65536
                left = self.size
                while left > 0:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return True
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
            return False


def is_disk_full(err: BaseException, reserve: Reserve | None = None) -> bool:
    """Whether an SQLite error means "no space" rather than damage.

    SQLITE_FULL says so directly. Creating the ``-shm`` file on a full disk
    fails as an I/O error or "unable to open", so those count as full when
    the file system has (next to) no free space.
    """
    if not isinstance(err, sqlite3.Error):
        return False
    primary = err.sqlite_errorcode & 0xFF
    if primary == SQLITE_FULL or "full" in str(err).lower():
        return True
    if primary in (SQLITE_IOERR, SQLITE_CANTOPEN) or "disk i/o error" in str(err).lower():
        return reserve is not None and reserve.free_bytes() < max(reserve.size, 1 << 20)
    return False
