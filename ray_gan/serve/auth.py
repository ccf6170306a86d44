"""Bearer tokens of the HTTP API: from an environment variable and/or a file (a mounted
Kubernetes Secret). The file is read again when it changes, so tokens rotate without a
restart. Tokens are compared in constant time; they are never logged."""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
import time

from ray_gan.config import ServeAuth


class AuthConfigError(ValueError):
    """Auth settings that would expose the endpoint unprotected, or a token source that is unreadable."""


def _split(text: str) -> set[str]:
    return {t.strip() for t in text.replace(",", "\n").splitlines() if t.strip() and not t.strip().startswith("#")}


class TokenStore:
    """The tokens that ``auth`` names; :meth:`check` tells whether a request may pass."""

    def __init__(self, auth: ServeAuth, recheck_s: float = 1.0) -> None:
        self.auth = auth
        self._env = _split(os.environ.get(auth.token_env, "")) if auth.token_env else set()
        self._file_tokens: set[str] = set()
        self._mtime: float | None = None
        self._checked = 0.0
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        if auth.token_file:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self._recheck_s:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = os.stat(self.auth.token_file).st_mtime
            except OSError as e:
                if force:
                    raise AuthConfigError(f"auth.token_file {self.auth.token_file}: {e.strerror}") from None
                return  # a Secret being re-mounted: keep the last tokens
            if mtime != self._mtime:
                with open(self.auth.token_file, encoding="utf-8") as f:
                    self._file_tokens = _split(f.read())
                self._mtime = mtime

    @property
    def enabled(self) -> bool:
        """Whether any token source is configured (then a request needs a token)."""
        return bool(self._env) or self.auth.token_file is not None

    def tokens(self) -> set[str]:
        if self.auth.token_file:
            self._reload()
        return self._env | self._file_tokens

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries a valid bearer token."""
        if not self.enabled:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        token = token.strip().encode()
        ok = False
        for t in self.tokens():  # no early exit: time does not tell which token nearly matched
            ok |= hmac.compare_digest(token, t.encode())
        return ok


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: ServeAuth) -> None:
    """Refuse to serve on a non-loopback address with no token configured, unless
    ``auth.insecure`` says so on purpose."""
    if is_loopback(host) or auth.insecure:
        return
    if not TokenStore(auth).enabled:
        raise AuthConfigError(
            f"refusing to serve on {host} without bearer tokens: set {auth.token_env or 'auth.token_env'} "
            f"or auth.token_file, or pass --insecure (auth.insecure: true) to serve unauthenticated on purpose")
