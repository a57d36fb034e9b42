"""Signed pickup tokens: central's Ed25519 signature opens a parcel's door, offline, once.

A token is the text ``HA:TOK:<payload>.<signature>`` (shown as a QR code),
both parts base64url without padding. ``payload`` is canonical JSON (UTF-8,
keys sorted, no spaces)::

    {"exp":1767225600,"hub":"hub-1","jti":"T-8f3a","parcel":"P-100","v":1}

``exp`` is the expiry in Unix seconds, ``jti`` a token id unique per token
(at most 64 characters), ``v`` the format version (1). ``signature`` is the
64-byte Ed25519 signature of the payload bytes exactly as encoded. The hub
checks the signature with ``[locker_policy] token_public_key``, then hub,
expiry (only while the wall clock is trustworthy), single use (the token id
is recorded as spent in the transaction of the release) and the parcel.
Each refusal has its own reason (:data:`REASONS`).

``cryptography`` is imported only when a public key is configured.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from hubagent.errors import CommandError
from hubagent.lockers import repo
from hubagent.lockers.inputs import Attempt, Outcome, _feedback
from hubagent.lockers.lockout import input_key
from hubagent.lockers.state import Purpose
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from hubagent.lockers.inputs import CodeDesk
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

PREFIX = "HA:TOK:"
VERSION = 1
REASONS = {
    "bad_token": "not a pickup token (garbled or an unknown version)",
    "bad_signature": "the signature is not central's",
    "other_hub": "the token is for another hub",
    "token_expired": "the token is past its expiry",
    "token_used": "the token was used already",
    "unknown_parcel": "the hub does not know the parcel",
    "tokens_off": "no token_public_key is configured",
}
"""Why a token is refused; each is the ``reason`` of ``locker.code_rejected``."""
COUNTED = frozenset({"bad_token", "bad_signature"})
"""Refusals that count towards the input's lock-out: garbage and forgeries, not genuine tokens."""
_JTI = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class TokenRefused(Exception):
    """A token that opens nothing; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, token_id: str | None = None) -> None:
        """Refused for ``reason`` (token_id when the token could be read)."""
        super().__init__(REASONS[reason])
        self.reason = reason
        self.token_id = token_id


class Token(msgspec.Struct, frozen=True):
    """A token whose signature checked out."""

    id: str
    parcel: str
    hub: str
    expires: int
    """Unix seconds."""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def canonical_payload(*, token_id: str, parcel: str, hub: str, expires: int) -> bytes:
    """The payload bytes central signs (canonical JSON)."""
    doc = {"exp": int(expires), "hub": hub, "jti": token_id, "parcel": parcel, "v": VERSION}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(key: "Ed25519PrivateKey", *, token_id: str, parcel: str, hub: str, expires: int) -> str:
    """A token as central makes it (``HA:TOK:...``); used by tests and documented for central."""
    payload = canonical_payload(token_id=token_id, parcel=parcel, hub=hub, expires=expires)
    return PREFIX + _b64e(payload) + "." + _b64e(key.sign(payload))


def load_public_key(value: str) -> "Ed25519PublicKey":
    """Central's public key from base64 (32 raw bytes) or a file (PEM, or base64 text).

    Raises ValueError with a reason a person can act on.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = value.strip()
    if "/" in text and not text.endswith("="):
        path = Path(text)
        try:
            text = path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError as e:
            raise ValueError(f"not a PEM public key: {e}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"a {type(key).__name__}, not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                               validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither base64 nor a readable PEM file") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(key: "Ed25519PublicKey", value: str) -> Token:
    """Check the signature and read the payload of ``value`` (with or without ``HA:TOK:``)."""
    from cryptography.exceptions import InvalidSignature

    body = value[len(PREFIX):] if value.startswith(PREFIX) else value
    try:
        payload_text, sig_text = body.split(".")
        payload, signature = _b64d(payload_text), _b64d(sig_text)
    except (ValueError, binascii.Error):
        raise TokenRefused("bad_token") from None
    if len(signature) != 64:
        raise TokenRefused("bad_token")
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise TokenRefused("bad_signature") from None
    return _read_payload(payload)


def _read_payload(payload: bytes) -> Token:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise TokenRefused("bad_token") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise TokenRefused("bad_token")
    jti, parcel, hub, exp = doc.get("jti"), doc.get("parcel"), doc.get("hub"), doc.get("exp")
    if not (isinstance(jti, str) and _JTI.match(jti) and isinstance(parcel, str) and isinstance(hub, str)
            and isinstance(exp, int) and not isinstance(exp, bool) and 0 < exp < 2**40):
        raise TokenRefused("bad_token")
    return Token(jti, parcel, hub, exp)


def is_spent(db: repo.Reader, token_id: str) -> bool:
    """Whether a token id was used already."""
    return repo.one(db, "SELECT 1 AS x FROM locker_tokens_spent WHERE id=?", (token_id,)) is not None


def unspend(tx: Tx, token_id: str) -> None:
    """Make a token whose release never opened the door usable again."""
    tx.execute("DELETE FROM locker_tokens_spent WHERE id=?", (token_id,))


class TokenDesk:
    """Redeems scanned pickup tokens at the lockers (core thread)."""

    def __init__(self, svc: "LockerService", desk: "CodeDesk", public_key: str | None) -> None:
        """Load central's public key (importing ``cryptography``) only when one is configured."""
        self.svc = svc
        self.desk = desk
        self.key = load_public_key(public_key) if public_key else None

    def scan_token(self, scan: Any, scanner: str) -> Any:
        """``HA:TOK:...`` shown to a locker-facing scanner or the locker camera."""
        return _feedback(self.redeem(scanner, scan.value).outcome)

    def redeem(self, source: str, value: str) -> Attempt:
        """Check one token from ``source`` and open its parcel's door (single use)."""
        svc, desk = self.svc, self.desk
        key = input_key("scanner", source)  # tokens are scanned: the scanner's lock-out
        now = svc.clock.monotonic()
        wait = svc.limiter.check(key, now)
        if wait > 0:
            desk._rejected(source, "locked_out", retry_in_s=round(wait, 1))
            return Attempt(Outcome.LOCKED_OUT, "locked_out", retry_in_s=round(wait, 1))
        try:
            token = self._check(value)
        except TokenRefused as e:
            detail = {"token": e.token_id} if e.token_id else {}
            if e.reason in COUNTED:
                desk._failure(source, key, now, e.reason)
            else:
                desk._rejected(source, e.reason, **detail)
            return Attempt(Outcome.REJECTED, e.reason)
        try:
            with svc.store.write() as tx:
                bank, comp = self._open(tx, token, source)
            svc.limiter.success(key, now)
            return Attempt(Outcome.OPENED, "token", bank=bank, compartment=comp)
        except TokenRefused as e:
            desk._rejected(source, e.reason, token=token.id)
            return Attempt(Outcome.REJECTED, e.reason)
        except CommandError as e:
            with svc.store.write() as tx:
                repo.audit(tx, "code_no_action", ref=token.parcel, source=source, purpose="token",
                           token=token.id, why=e.code)
                tx.emit("locker.code_no_action", {"source": source, "purpose": "token", "reason": e.code,
                                                  "token": token.id})
            return Attempt(Outcome.NOTHING, e.code)

    def _check(self, value: str) -> Token:
        if self.key is None:
            raise TokenRefused("tokens_off")
        token = verify(self.key, value)
        if token.hub != self.svc.app.hub_id:
            raise TokenRefused("other_hub", token.id)
        if self.svc.wall_clock_sane() and self.svc.wall().timestamp() >= token.expires:
            raise TokenRefused("token_expired", token.id)
        return token

    def _open(self, tx: Tx, token: Token, source: str) -> tuple[str, str]:
        """Spend the token and release its parcel's door, in the caller's transaction."""
        if is_spent(tx, token.id):
            raise TokenRefused("token_used", token.id)
        parcel = repo.parcel(tx, token.parcel)
        if parcel is None:
            raise TokenRefused("unknown_parcel", token.id)
        if parcel["state"] != "stored":
            raise CommandError("not_stored", "the parcel is not waiting in a compartment")
        release = self.svc.release(tx, parcel["bank"], parcel["compartment"], Purpose.PICKUP, source=source,
                                   reason="pickup", token=token.id)
        tx.execute("INSERT INTO locker_tokens_spent(id, parcel, release_id, spent_at) VALUES (?, ?, ?, ?)",
                   (token.id, token.parcel, release, tx.now))
        repo.audit(tx, "token_accepted", bank=parcel["bank"], compartment=parcel["compartment"],
                   ref=token.parcel, source=source, token=token.id)
        return parcel["bank"], parcel["compartment"]
