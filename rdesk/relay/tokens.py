"""Enrolment tokens: which hosts may register on a relay.

The operator creates a token (``rdesk relay token create``) and gives it to a host; the relay
keeps only its SHA-256, in ``<data dir>/enrolment-tokens.json`` (mode 0600, written
atomically). A token is 128 random bits, so a plain hash is enough: there is nothing to guess
by brute force that a slow hash would protect. Checking compares the hash with **every**
stored hash in constant time, so the answer's timing says nothing about which (if any)
matched. The file is re-read when it changes, so a revoked token stops working on a running
relay at its next use.

Every error a user can cause raises :class:`TokenError` with a one-line ``str()``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import json
import logging
import secrets
from pathlib import Path

from rdesk.common.files import atomic_write

__all__ = [
    "TOKENS_FILENAME", "TOKEN_PREFIX", "Enrolment", "TokenError", "TokenInfo", "TokenStore",
]

log = logging.getLogger(__name__)

TOKENS_FILENAME = "enrolment-tokens.json"
TOKEN_PREFIX = "rdt_"
_MAX_TOKENS = 10_000
_MAX_LABEL = 64
_MAX_FILE = 4 * 1024 * 1024


class TokenError(Exception):
    """The token file cannot be read or written, or a token name is unknown (one line)."""


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """What the relay keeps about a token: never the token itself."""

    id: str
    label: str
    created: str
    digest: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenStore:
    """The enrolment tokens of the relay whose data directory is ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / TOKENS_FILENAME
        self._stamp: tuple[int, int] | None = None
        self._tokens: list[TokenInfo] = []

    def _load(self) -> list[TokenInfo]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._tokens = None, []
            return self._tokens
        except OSError as exc:
            raise TokenError(f"cannot read {self.path}: {exc.strerror}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._tokens
        if stat.st_size > _MAX_FILE:
            raise TokenError(f"{self.path} is larger than {_MAX_FILE} bytes")
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            tokens = [
                TokenInfo(str(t["id"]), str(t["label"]), str(t["created"]), str(t["digest"]))
                for t in raw["tokens"]
            ]
        except OSError as exc:
            raise TokenError(f"cannot read {self.path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"{self.path} is not an enrolment token file") from None
        self._stamp, self._tokens = stamp, tokens
        return tokens

    def _save(self, tokens: list[TokenInfo]) -> None:
        data = {"version": 1, "tokens": [dataclasses.asdict(t) for t in tokens]}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode(), 0o600)
        except OSError as exc:
            raise TokenError(f"cannot write {self.path}: {exc.strerror}") from None
        self._stamp = None  # re-read (and re-stamp) on next use

    def create(self, label: str, *, now: datetime.datetime | None = None) -> tuple[str, TokenInfo]:
        """Make a new token; returns ``(token, info)``. The token is shown once, never stored."""
        label = " ".join(label.split())[:_MAX_LABEL]
        tokens = self._load()
        if len(tokens) >= _MAX_TOKENS:
            raise TokenError(f"{self.path} already holds {_MAX_TOKENS} tokens")
        secret = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
        token = TOKEN_PREFIX + secret
        when = now or datetime.datetime.now(datetime.timezone.utc)
        info = TokenInfo(secrets.token_hex(4), label, when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         _digest(token))
        self._save([*tokens, info])
        return token, info

    def list(self) -> list[TokenInfo]:
        return list(self._load())

    def revoke(self, name: str) -> TokenInfo:
        """Remove the token whose id (or, if unique, label) is ``name``; returns it."""
        tokens = self._load()
        matches = [t for t in tokens if t.id == name] or [t for t in tokens if t.label == name]
        if not matches:
            raise TokenError(f"no enrolment token {name!r} (see rdesk relay token list)")
        if len(matches) > 1:
            raise TokenError(f"several tokens are labelled {name!r}; revoke one by its id")
        self._save([t for t in tokens if t is not matches[0]])
        return matches[0]

    def check(self, token: str | None) -> TokenInfo | None:
        """The stored token ``token`` is, or ``None``; constant time in which one matched."""
        if not token:
            return None
        digest = _digest(token).encode()
        found: TokenInfo | None = None
        for info in self._load():
            if hmac.compare_digest(digest, info.digest.encode()) and found is None:
                found = info
        return found



class Enrolment:
    """Whether a host's ``register`` may enrol: its token checked against ``tokens``, or any
    host when ``open_enrolment``."""

    def __init__(self, tokens: TokenStore | None, open_enrolment: bool) -> None:
        self.tokens = None if open_enrolment else tokens

    def refusal(self, token: str | None) -> str | None:
        """The reason to refuse ``token``, or ``None`` if it enrols."""
        if self.tokens is None:
            return None
        if not token:
            return "an enrolment token is required"
        try:
            found = self.tokens.check(token)
        except TokenError as exc:
            log.error("%s", exc)
            return "the relay cannot check enrolment tokens"
        return None if found is not None else "enrolment token refused"

    def token_id(self, token: str | None) -> str | None:
        """The id of an accepted token, for the audit log (``None`` in open mode)."""
        if self.tokens is None:
            return None
        with contextlib.suppress(TokenError):
            found = self.tokens.check(token)
            return found.id if found is not None else None
        return None
