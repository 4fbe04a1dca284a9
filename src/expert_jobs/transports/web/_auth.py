"""Sign-in and CSRF for the dashboard: the API keys, kept in an HttpOnly cookie.

The cookie holds ``<nonce>.<key>``: the key entered at sign-in (never put in a URL, never readable
by scripts: ``HttpOnly``; never sent by another site: ``SameSite=Strict``; ``Secure`` over HTTPS)
and a random nonce made at sign-in. Every request authenticates the key again through the service,
so a key removed from the configuration stops working at once.

State-changing requests (``POST``) must carry the session's CSRF token, ``HMAC-SHA256(key,
nonce)`` in hex, as the ``csrf`` form field or the ``X-CSRF-Token`` header, and must not come from
another origin (``Origin`` and ``Sec-Fetch-Site``, when the browser sends them). The token is
computed, not stored, so any process serving the dashboard can check it, and it changes with every
sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from expert_jobs.domain.errors import ServiceError
from expert_jobs.service.applications import Principal
from expert_jobs.service.service import ExpertJobsService

__all__ = ["COOKIE", "CsrfRefused", "Session", "check_csrf", "cookie_value", "read_session", "same_origin"]

COOKIE = "ej_dashboard"
"""The name of the dashboard's session cookie."""

_MAX_COOKIE = 512  # a key is ~50 characters; anything far longer is not ours


class CsrfRefused(ServiceError):
    """403: a state-changing request without the session's CSRF token, or from another origin."""

    code = 403
    error = "Forbidden"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who it acts for and the token its forms must carry."""

    principal: Principal
    csrf: str


def _token(key: str, nonce: str) -> str:
    return hmac.new(key.encode("utf-8"), b"csrf:" + nonce.encode("ascii"), hashlib.sha256).hexdigest()


def cookie_value(key: str) -> str:
    """A new cookie value for ``key`` (a fresh nonce, so a fresh CSRF token)."""
    return f"{secrets.token_urlsafe(18)}.{key}"


def read_session(request: Request, service: ExpertJobsService) -> Session | None:
    """The request's session, or ``None`` when it has no cookie or its key is not (any more) good."""
    raw = request.cookies.get(COOKIE, "")
    if not raw or len(raw) > _MAX_COOKIE:
        return None
    nonce, _, key = raw.partition(".")
    if not nonce or not key or not nonce.isascii():
        return None
    try:
        principal = service.authenticate(f"Bearer {key}")
    except ServiceError:
        return None
    return Session(principal, _token(key, nonce))


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from this origin (or says nothing either way)."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
        return False
    if origin == "null":
        return False
    site = request.headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")


def check_csrf(request: Request, session: Session, form_token: str | None) -> None:
    """Raise :class:`CsrfRefused` unless the request comes from this origin with the token."""
    if not same_origin(request):
        raise CsrfRefused("cross-origin request refused")
    presented = request.headers.get("x-csrf-token") or form_token or ""
    if not hmac.compare_digest(presented.encode("utf-8"), session.csrf.encode("ascii")):
        raise CsrfRefused("missing or wrong CSRF token; reload the page and try again")
