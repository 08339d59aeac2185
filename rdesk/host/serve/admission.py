"""Who gets in: the host's admission rules as data, decided by one pure function.

A login attempt moves through the checks in :data:`RULES` order, the way TigerVNC's server
answers each connection with accept, reject or "pending" while it asks the local user. The
I/O shell (:mod:`rdesk.host.serve.server`) gathers the facts — is the host locked against
guessing, what the credential grants, how many viewers are connected, what the local user
answered — into an :class:`Attempt`, and calls :func:`decide` each time it learns one more:

- :class:`Refuse`: close with this code and reason (and log this event);
- :class:`CheckCredential`: the credential has not been checked yet;
- :class:`AskConsent`: everything else allows it; ask the host's local user;
- :class:`Admit`: welcome the viewer with this access.

The first rule that refuses wins, so the order is the contract; ``tests/host/test_admission.py``
checks every reason and its place.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from rdesk.protocol.access import Access
from rdesk.protocol.errors import CloseCode

__all__ = [
    "RULES",
    "Admit",
    "AskConsent",
    "Attempt",
    "CheckCredential",
    "ConsentAnswer",
    "Decision",
    "Refuse",
    "decide",
]


class ConsentAnswer(enum.Enum):
    """What came of asking the host's local user."""

    ADMITTED = "admitted"
    REFUSED = "refused"
    TIMED_OUT = "timed out"
    #: Consent is required but nobody at the host can answer (no console).
    NOBODY = "nobody"


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What the host knows about one login when a decision is due.

    ``checked`` is False until the credential has been checked; ``access`` is then what it
    grants (``None``: wrong credential). ``consent`` is ``None`` until the local user answered.
    """

    unauthenticated_full: bool = False
    locked: bool = False
    checked: bool = False
    access: Access | None = None
    #: "password" or "certificate": names what was wrong in the refusal.
    credential: str = "password"
    viewers: int = 0
    max_viewers: int = 16
    ask_consent: bool = False
    consent: ConsentAnswer | None = None


@dataclasses.dataclass(frozen=True)
class Refuse:
    """Close the connection: ``code`` and one-line ``reason`` for the viewer, ``event`` for the
    audit log (with ``detail`` as its ``reason`` field when not empty; no event when empty:
    the consent answer is logged where it arrives, admitted or not)."""

    code: CloseCode
    reason: str
    event: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class CheckCredential:
    """Check the credential (a password hash, or the TLS client certificate) next."""


@dataclasses.dataclass(frozen=True)
class AskConsent:
    """Ask the host's local user whether to admit this viewer."""


@dataclasses.dataclass(frozen=True)
class Admit:
    """Welcome the viewer with ``access``."""

    access: Access


Decision = Refuse | CheckCredential | AskConsent | Admit

_CONSENT_REASONS = {
    ConsentAnswer.REFUSED: "the host's user refused the connection",
    ConsentAnswer.TIMED_OUT: "the host's user did not answer in time",
    ConsentAnswer.NOBODY: "nobody at the host can accept connections",
}

Rule = tuple[str, Callable[[Attempt], "Decision | None"]]


def _unauthenticated(a: Attempt) -> Decision | None:
    # Slowloris and connection floods: only so many may be mid-handshake per source and in all.
    if a.unauthenticated_full:
        return Refuse(CloseCode.POLICY, "too many unauthenticated connections", "rejected",
                      "too many unauthenticated")
    return None


def _locked(a: Attempt) -> Decision | None:
    # Distributed guessing: every source waits once the host-wide limit is reached.
    if a.locked:
        return Refuse(CloseCode.POLICY, "too many failed logins; try again later", "auth_locked")
    return None


def _credential(a: Attempt) -> Decision | None:
    if not a.checked:
        return CheckCredential()
    if a.access is None:
        return Refuse(CloseCode.AUTH_FAILED, f"wrong {a.credential}", "auth_failure")
    return None


def _capacity(a: Attempt) -> Decision | None:
    # Before asking anyone: the local user should not accept a viewer the host then refuses.
    if a.viewers >= a.max_viewers:
        return Refuse(CloseCode.POLICY, f"host has reached its limit of {a.max_viewers} viewers",
                      "rejected", "max_viewers")
    return None


def _consent(a: Attempt) -> Decision | None:
    if not a.ask_consent:
        return None
    if a.consent is None:
        return AskConsent()
    if a.consent is not ConsentAnswer.ADMITTED:
        return Refuse(CloseCode.POLICY, _CONSENT_REASONS[a.consent], "")
    return None


#: The admission checks, in the order they are applied.
RULES: tuple[Rule, ...] = (
    ("unauthenticated", _unauthenticated),
    ("locked", _locked),
    ("credential", _credential),
    ("capacity", _capacity),
    ("consent", _consent),
)


def decide(attempt: Attempt) -> Decision:
    """The first rule's answer that is not "no objection", or :class:`Admit`."""
    for _name, rule in RULES:
        decision = rule(attempt)
        if decision is not None:
            return decision
    assert attempt.access is not None  # the credential rule let it through
    return Admit(attempt.access)
