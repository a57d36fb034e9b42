"""Pickup, staff and return codes: generation, keyed hashing, checking.

Codes are short (six digits by default), so a plain hash of one is
reversed by trying all million values. The database therefore stores only
``HMAC-SHA256(secret, purpose || code)`` keyed with a per-hub secret that
lives outside the database (a systemd credential, an environment variable
or a 0600 file): a copied database alone does not reveal any code. The
``purpose`` is part of the MAC input so a pickup code's hash never verifies
as a staff or return code. Rotating the secret invalidates every stored hash.

Guessing at the keypad is limited separately (:mod:`hubagent.lockers.lockout`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from hubagent.errors import CommandError, ConfigError, InputError

log = logging.getLogger(__name__)


class SecretMissing(ConfigError):
    """No source holds a code secret; ``reason`` lists every place looked in."""

MIN_LENGTH = 4
"""Shortest code accepted anywhere."""
MAX_LENGTH = 12
"""Longest code accepted anywhere."""
MIN_SECRET_BYTES = 16
"""A shorter secret would make the keyed hash guessable offline."""
SECRET_NAME = "hubagent-code-secret"
"""Default credential / file name of the per-hub secret."""
SECRET_ENV = "HUBAGENT_CODE_SECRET"
"""Default environment variable holding the secret as hex."""

_DIGITS = frozenset("0123456789")
# Customers copy codes from an SMS ("123 456", "123-456"); the grouping is not part of the code.
_SEPARATORS = str.maketrans("", "", " -")
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def plain_or_hash(field: str, plain: str | None, hashed: str | None) -> tuple[str | None, str | None]:
    """A command's ``field`` / ``field_hash`` pair: at most one given, a hash well formed.

    Returns ``(plain, hashed)`` with at most one of them set; CommandError
    ``bad_args`` naming the field otherwise.
    """
    if plain is not None and hashed is not None:
        raise CommandError("bad_args", f"give either {field} or {field}_hash, not both")
    if hashed is not None and not _HASH_RE.match(hashed):
        raise CommandError("bad_args", f"{field}_hash must be 64 lower-case hex digits")
    return plain, hashed


def generate_code(length: int = 6) -> str:
    """A uniformly random code of ``length`` decimal digits (``secrets``)."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"code length must be {MIN_LENGTH}..{MAX_LENGTH}, not {length}")
    return "".join(secrets.choice("0123456789") for _ in range(length))


def normalise_code(raw: object, *, min_length: int = MIN_LENGTH,
                   max_length: int = MAX_LENGTH) -> str:
    """The code in ``raw`` with spaces and dashes removed.

    Raises ``InputError("bad_code", ...)`` unless what remains is ASCII
    digits only (not other scripts' digits) of ``min_length..max_length``.
    """
    if not isinstance(raw, str):
        raise InputError("bad_code", f"a code must be text, not {type(raw).__name__}")
    code = raw.strip().translate(_SEPARATORS)
    if not code:
        raise InputError("bad_code", "the code is empty")
    if not set(code) <= _DIGITS:
        raise InputError("bad_code", "a code may contain only the digits 0-9")
    if not min_length <= len(code) <= max_length:
        raise InputError("bad_code", f"a code has {min_length} to {max_length} digits, not {len(code)}")
    return code


def hash_code(secret: bytes, code: str, purpose: str) -> str:
    """Hex HMAC-SHA256 of ``code`` for ``purpose`` ("pickup", "staff", "return"...).

    ``code`` must already be normalised (:func:`normalise_code`); a code
    that is not raises ``InputError("bad_code")``. A bad secret or purpose
    is a programming error (ValueError).
    """
    _check_secret(secret)
    _check_purpose(purpose)
    if normalise_code(code) != code:
        raise InputError("bad_code", "normalise the code before hashing it")
    return _mac(secret, code, purpose)


def verify(secret: bytes, code: str, purpose: str, stored_hash: str) -> bool:
    """Whether ``code`` is the one ``stored_hash`` was made from for ``purpose``.

    Compares in constant time (``hmac.compare_digest``). Anything malformed
    (a code that is not digits, a stored hash that is not 64 hex digits)
    simply does not verify: keypad input never raises here.
    """
    _check_secret(secret)
    _check_purpose(purpose)
    if not isinstance(code, str) or not isinstance(stored_hash, str):
        return False
    if not _HASH_RE.match(stored_hash):
        return False
    try:
        candidate, well_formed = _mac(secret, normalise_code(code), purpose), True
    except InputError:
        candidate, well_formed = "0" * 64, False  # compare anyway: malformed guesses take the same path
    return hmac.compare_digest(candidate, stored_hash) and well_formed


def _mac(secret: bytes, code: str, purpose: str) -> str:
    # NUL separates the fields so ("pickup", "1") and ("pickup1", "") never collide.
    message = purpose.encode("ascii") + b"\x00" + code.encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the code secret must be at least {MIN_SECRET_BYTES} bytes")


def _check_purpose(purpose: str) -> None:
    if not isinstance(purpose, str) or not _PURPOSE_RE.match(purpose):
        raise ValueError(f"purpose {purpose!r} must be a short lower-case word")


def load_secret(name: str = SECRET_NAME, *, env_var: str | None = SECRET_ENV,
                state_dir: Path | None = None, create: bool = False,
                environ: Mapping[str, str] | None = None) -> bytes:
    """The per-hub code secret, from the first place that has one.

    1. ``$CREDENTIALS_DIRECTORY/<name>`` - a systemd credential
       (``LoadCredentialEncrypted=`` keeps it encrypted at rest); preferred.
    2. the environment variable ``env_var``.
    3. ``<state_dir>/<name>``, a file that must be readable by its owner only.
    4. with ``create=True`` and a ``state_dir``: 32 random bytes written to
       that file with mode 0600 (so a hub works out of the box; back the
       file up apart from the database, losing it voids every stored code).

    Every source holds the secret as hex (``openssl rand -hex 32``), at
    least 32 hex digits. Raises ConfigError naming the source at fault.
    """
    env = os.environ if environ is None else environ
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / name).is_file():
        path = Path(creds) / name
        return _parse_secret(_read_text(path), str(path))
    if env_var and env.get(env_var):
        return _parse_secret(env[env_var], f"${env_var}")
    local = Path(state_dir) / name if state_dir is not None else None
    if local is not None and local.exists():
        _check_private(local)
        return _parse_secret(_read_text(local), str(local))
    if not create or local is None:
        raise SecretMissing(name, "", "no code secret found; looked in " + _places(name, env_var, local, env))
    return _create_secret(local)


def _places(name: str, env_var: str | None, path: Path | None, env: Mapping[str, str]) -> str:
    """Every place :func:`load_secret` looks, as one phrase for an error message."""
    creds = env.get("CREDENTIALS_DIRECTORY")
    places = [f"$CREDENTIALS_DIRECTORY/{name} ("
              + (f"no such file in {creds}" if creds else "$CREDENTIALS_DIRECTORY is not set") + ")"]
    if env_var:
        places.append(f"${env_var} (not set)")
    if path is not None:
        places.append(f"{path} (no such file)")
    return ", ".join(places)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot read the code secret: {e}") from e


def _parse_secret(text: str, where: str) -> bytes:
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(where, "", "the code secret must be hex digits") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(where, "", f"the code secret needs at least {2 * MIN_SECRET_BYTES} hex digits")
    return secret


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigError(str(path), "", f"the code secret file is readable by others "
                          f"(mode {mode & 0o777:o}); chmod 600 it")


def _create_secret(path: Path) -> bytes:
    secret = secrets.token_bytes(32)
    try:
        # O_EXCL: never overwrite a secret another process just created.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
    except FileExistsError:
        _check_private(path)
        return _parse_secret(_read_text(path), str(path))
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot create the code secret: {e}") from e
    log.warning("created a new code secret in %s; back it up apart from the database", path)
    return secret
