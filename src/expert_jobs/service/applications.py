"""Applications and API keys: who may call the API, and for which application.

API keys act for one application of one organization; system keys act for the runtime itself
(the status-update endpoint). Keys are random and high-entropy, shown once when created, stored
only as SHA-256 hashes and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Application", "KeyRing", "Principal", "SystemPrincipal", "generate_key", "hash_key"]

_KEY_PREFIX = "ejk_"
_SYSTEM_PREFIX = "ejs_"


def generate_key(*, system: bool = False) -> str:
    """A new API key (``ejk_...``) or system key (``ejs_...``): 256 bits from the OS's secure source."""
    return (_SYSTEM_PREFIX if system else _KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Application:
    """An application of an organization, with the hashes of its API keys and its provider keys
    (``{"anthropic": "...", "openai": "...", "google": "...", "deepseek": "..."}``)."""

    id: str
    organization_id: str
    name: str = ""
    key_hashes: tuple[str, ...] = ()
    provider_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SystemPrincipal:
    """The runtime itself, authenticated by a system key."""


Principal = Application | SystemPrincipal


class KeyRing:
    """Resolves a presented key to its application (or to the system)."""

    def __init__(
        self, applications: Iterable[Application] = (), system_key_hashes: Iterable[str] = ()
    ) -> None:
        self.applications: dict[str, Application] = {}
        self._by_hash: dict[str, Application] = {}
        self._system_hashes = tuple(system_key_hashes)
        for application in applications:
            self.add(application)

    def add(self, application: Application) -> None:
        """Register an application and its key hashes."""
        self.applications[application.id] = application
        for key_hash in application.key_hashes:
            self._by_hash[key_hash] = application

    def add_system_key_hash(self, key_hash: str) -> None:
        """Accept another system key (by its hash)."""
        self._system_hashes = (*self._system_hashes, key_hash)

    def application(self, application_id: str) -> Application | None:
        """The registered application ``application_id``, or ``None``."""
        return self.applications.get(application_id)

    def provider_key(self, provider: str, application_id: str | None, /) -> str | None:
        """The application's own key for ``provider`` (``None``: fall back to the environment).

        Shaped as the provider registry's ``key_for`` hook:
        ``ProviderRegistry(key_for=keyring.provider_key)``.
        """
        application = self.applications.get(application_id or "")
        if application is None:
            return None
        return application.provider_keys.get(provider) or None

    def authenticate(self, key: str) -> Principal | None:
        """The application (or system) ``key`` belongs to, or ``None``.

        Lookup is by hash (the hash of a guess reveals nothing); the final comparison is constant-time.
        """
        presented = hash_key(key)
        application = self._by_hash.get(presented)
        if application is not None and any(hmac.compare_digest(presented, h) for h in application.key_hashes):
            return application
        if any(hmac.compare_digest(presented, h) for h in self._system_hashes):
            return SystemPrincipal()
        return None
