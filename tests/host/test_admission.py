"""The host's admission rules (rdesk/host/serve/admission.py): every refusal and its order."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdesk.host.serve.admission import (
    RULES,
    Admit,
    AskConsent,
    Attempt,
    CheckCredential,
    ConsentAnswer,
    Refuse,
    decide,
)
from rdesk.protocol.access import Access
from rdesk.protocol.errors import CloseCode

#: A login that passes every rule (no consent asked).
GOOD = Attempt(checked=True, access=Access.CONTROL, viewers=0, max_viewers=4)


def test_rules_in_their_documented_order() -> None:
    assert [name for name, _ in RULES] == [
        "unauthenticated", "locked", "credential", "capacity", "consent",
    ]


def test_a_good_login_is_admitted_with_its_access() -> None:
    assert decide(GOOD) == Admit(Access.CONTROL)
    assert decide(dataclasses.replace(GOOD, access=Access.VIEW)) == Admit(Access.VIEW)


def test_unchecked_credential_asks_for_the_check() -> None:
    assert decide(Attempt()) == CheckCredential()


@pytest.mark.parametrize(
    ("attempt", "code", "reason", "event"),
    [
        (dataclasses.replace(GOOD, unauthenticated_full=True), CloseCode.POLICY,
         "too many unauthenticated connections", "rejected"),
        (dataclasses.replace(GOOD, locked=True), CloseCode.POLICY,
         "too many failed logins; try again later", "auth_locked"),
        (dataclasses.replace(GOOD, access=None), CloseCode.AUTH_FAILED, "wrong password",
         "auth_failure"),
        (dataclasses.replace(GOOD, access=None, credential="certificate"),
         CloseCode.AUTH_FAILED, "wrong certificate", "auth_failure"),
        (dataclasses.replace(GOOD, viewers=4), CloseCode.POLICY,
         "host has reached its limit of 4 viewers", "rejected"),
        (dataclasses.replace(GOOD, ask_consent=True, consent=ConsentAnswer.REFUSED),
         CloseCode.POLICY, "the host's user refused the connection", ""),
        (dataclasses.replace(GOOD, ask_consent=True, consent=ConsentAnswer.TIMED_OUT),
         CloseCode.POLICY, "the host's user did not answer in time", ""),
        (dataclasses.replace(GOOD, ask_consent=True, consent=ConsentAnswer.NOBODY),
         CloseCode.POLICY, "nobody at the host can accept connections", ""),
    ],
)
def test_every_refusal(attempt: Attempt, code: CloseCode, reason: str, event: str) -> None:
    decision = decide(attempt)
    assert isinstance(decision, Refuse)
    assert (decision.code, decision.reason, decision.event) == (code, reason, event)


def test_consent_is_asked_only_once_everything_else_allows() -> None:
    asking = dataclasses.replace(GOOD, ask_consent=True)
    assert decide(asking) == AskConsent()
    assert decide(dataclasses.replace(asking, consent=ConsentAnswer.ADMITTED)) == Admit(
        Access.CONTROL)
    # A full host refuses before bothering the local user, and after: a viewer admitted by
    # the user while the host filled up is still refused.
    assert isinstance(decide(dataclasses.replace(asking, viewers=4)), Refuse)
    full_after = dataclasses.replace(asking, viewers=4, consent=ConsentAnswer.ADMITTED)
    refusal = decide(full_after)
    assert isinstance(refusal, Refuse) and "limit" in refusal.reason


def test_a_locked_host_does_not_check_the_credential() -> None:
    # Refusing before the check means no scrypt work for a locked host.
    decision = decide(Attempt(locked=True))
    assert isinstance(decision, Refuse) and decision.event == "auth_locked"


@given(
    unauth=st.booleans(),
    locked=st.booleans(),
    checked=st.booleans(),
    access=st.sampled_from([None, Access.CONTROL, Access.VIEW]),
    viewers=st.integers(0, 6),
    ask=st.booleans(),
    consent=st.sampled_from([None, *ConsentAnswer]),
)
def test_first_failing_rule_wins(unauth: bool, locked: bool, checked: bool,
                                 access: Access | None, viewers: int, ask: bool,
                                 consent: ConsentAnswer | None) -> None:
    attempt = Attempt(unauthenticated_full=unauth, locked=locked, checked=checked,
                      access=access, viewers=viewers, max_viewers=3, ask_consent=ask,
                      consent=consent)
    decision = decide(attempt)
    # The same answer as applying each rule by hand, in order.
    if unauth or locked:
        assert isinstance(decision, Refuse) and decision.code is CloseCode.POLICY
        assert decision.event == ("rejected" if unauth else "auth_locked")
    elif not checked:
        assert decision == CheckCredential()
    elif access is None:
        assert isinstance(decision, Refuse) and decision.code is CloseCode.AUTH_FAILED
    elif viewers >= 3:
        assert isinstance(decision, Refuse) and "limit" in decision.reason
    elif ask and consent is None:
        assert decision == AskConsent()
    elif ask and consent is not ConsentAnswer.ADMITTED:
        assert isinstance(decision, Refuse) and decision.event == ""
    else:
        assert decision == Admit(access)
