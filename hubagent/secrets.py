"""Secrets from systemd credentials or the environment, never from config.

The config file names *where* a secret lives (a credential name, an
environment variable); the value is read here and is never logged.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_secret(credential: str | None = None, env: str | None = None) -> str | None:
    """The secret from ``$CREDENTIALS_DIRECTORY/<credential>`` or ``$<env>``.

    systemd's ``LoadCredential=`` puts files in ``$CREDENTIALS_DIRECTORY``
    readable only by the service; that is preferred over an environment
    variable, which other processes of the same user can read.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if credential and creds:
        path = Path(creds) / credential
        if path.is_file():
            return path.read_text().rstrip("\n")
    if env:
        return os.environ.get(env)
    return None
