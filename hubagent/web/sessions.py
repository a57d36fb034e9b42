"""Browser sessions: who is signed in, CSRF tokens, idle expiry.

Sessions live in memory only: a restart signs everyone out, which is what
a shared hub computer should do. The cookie holds a random token (HttpOnly,
SameSite=Strict, Secure over TLS); every form and htmx request carries the
session's CSRF token, and a POST without the right one is refused.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Callable

COOKIE = "hubagent_session"


@dataclass
class Session:
    """One browser's session."""

    token: str
    csrf: str
    last_seen: float
    staff: str | None = None
    lang: str | None = None
    data: dict[str, str] = field(default_factory=dict)


class Sessions:
    """Every live session, expired after ``idle_s`` without a request."""

    def __init__(self, idle_s: float, clock: Callable[[], float], limit: int = 200) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._limit = limit
        self._by_token: dict[str, Session] = {}

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value (touching it), or None."""
        if not token:
            return None
        s = self._by_token.get(token)
        now = self._clock()
        if s is None:
            return None
        if now - s.last_seen > self.idle_s:
            del self._by_token[token]
            return None
        s.last_seen = now
        return s

    def new(self) -> Session:
        """A fresh anonymous session (the oldest is dropped past the limit)."""
        self._expire()
        if len(self._by_token) >= self._limit:
            oldest = min(self._by_token.values(), key=lambda s: s.last_seen)
            del self._by_token[oldest.token]
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock())
        self._by_token[s.token] = s
        return s

    def rotate(self, s: Session) -> Session:
        """A new token for the same session (at sign-in, against session fixation)."""
        self._by_token.pop(s.token, None)
        fresh = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock(),
                        staff=s.staff, lang=s.lang)
        self._by_token[fresh.token] = fresh
        return fresh

    def end(self, s: Session) -> None:
        """Sign out: forget the session."""
        self._by_token.pop(s.token, None)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if now - s.last_seen > self.idle_s]:
            del self._by_token[token]


def csrf_ok(s: Session | None, presented: str | None) -> bool:
    """Whether ``presented`` is the session's CSRF token (constant-time)."""
    return s is not None and presented is not None and hmac.compare_digest(s.csrf, presented)
