"""SessionGuard with a fake clock: held input released when the viewer falls silent, idle and
maximum session times, periodic certificate re-checks (rdesk/host/security/authority.py)."""

from __future__ import annotations

from rdesk.host.security.authority import SessionGuard


def test_a_silent_viewer_holding_keys_is_probed_then_released_once() -> None:
    g = SessionGuard(0.0, probe_after=1.0, release_after=3.0)
    assert not g.check(0.5, holds=True).probe
    assert g.check(1.5, holds=True).probe  # ask it: a live viewer answers the ping
    g.heard(1.6)  # it did
    assert not g.check(4.0, holds=True).release
    first = g.check(4.7, holds=True)  # silent for 3.1 s now
    assert first.release and not g.check(5.7, holds=True).release  # once, not every second
    g.active(6.0)  # it types again: a later freeze releases again
    assert g.check(9.5, holds=True).release


def test_an_unacknowledged_update_releases_even_if_pongs_arrive() -> None:
    g = SessionGuard(0.0, release_after=3.0)
    g.heard(10.0)
    assert g.check(10.0, holds=True, oldest_unacked=3.5).release
    assert not SessionGuard(0.0).check(10.0, holds=False, oldest_unacked=9.0).release


def test_idle_and_maximum_session_close_with_a_reason() -> None:
    g = SessionGuard(0.0, idle_timeout=600.0, max_session=3600.0)
    assert g.check(599.0, holds=False).close == ""
    assert g.check(600.0, holds=False).close == "idle for 10 minutes"
    g.active(600.0)
    assert g.check(1199.0, holds=False).close == ""
    assert g.check(3600.0, holds=False).close == "session time limit reached (60 minutes)"
    assert SessionGuard(0.0).check(10**6, holds=False).close == ""  # both off by default


def test_certificates_are_rechecked_periodically() -> None:
    g = SessionGuard(0.0, recheck_every=5.0)
    due = [t for t in range(0, 21) if g.check(float(t), holds=False).recheck]
    assert due == [5, 10, 15, 20]
