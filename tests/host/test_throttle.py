"""Brute-force protection with a fake clock: per-source delays, global limit, rotation, caps."""

from __future__ import annotations

from rdesk.host.security.throttle import AuthThrottle, GlobalThrottle, UnauthenticatedLimiter


def test_per_source_delay_grows_survives_reconnect_and_decays() -> None:
    t = AuthThrottle(base=0.5, ceiling=4.0, forget_after=100.0)
    assert t.delay("a", 0.0) == 0.0
    for i in range(6):
        t.failed("a", float(i))
    assert t.delay("a", 6.0) == 4.0  # capped at the ceiling
    assert t.delay("b", 6.0) == 0.0  # another source is not penalised
    assert t.delay("a", 200.0) == 0.0  # forgotten after a quiet period
    t.succeeded("a", 200.0)
    assert t.failures("a") == 0


def test_max_sources_bounds_memory() -> None:
    t = AuthThrottle(max_sources=3, global_throttle=GlobalThrottle(limit=10**6))
    for i in range(10):
        t.failed(f"10.0.0.{i}", 0.0)
    assert sum(t.failures(f"10.0.0.{i}") for i in range(10)) == 3


def test_global_limit_locks_every_source_then_expires() -> None:
    g = GlobalThrottle(limit=30, window=60.0, lockout=120.0, rotate_after=0)
    t = AuthThrottle(global_throttle=g)
    for i in range(30):
        t.failed(f"10.0.{i}.1", i * 1.0)  # one failure each from 30 sources
    assert not t.locked(30.0)
    t.failed("10.9.9.9", 31.0)  # the 31st within a minute
    assert t.locked(31.0) and t.locked(150.0)
    assert g.retry_after(100.0) == 51.0
    assert not t.locked(151.5)


def test_global_window_slides() -> None:
    g = GlobalThrottle(limit=3, window=10.0, lockout=5.0)
    for now in (0.0, 4.0, 8.0, 12.0, 16.0, 20.0):  # never more than 3 within 10 s
        g.failed(now)
        assert not g.locked(now)
    # The window holds 12, 16 and 20 (the earlier ones slid out): one more is the fourth.
    g.failed(20.0)
    assert g.locked(20.0)


def test_rotation_signal_after_n_failures_consumed_once() -> None:
    t = AuthThrottle(global_throttle=GlobalThrottle(rotate_after=5, limit=1000))
    for i in range(4):
        t.failed("x", float(i))
        assert not t.should_rotate()
    t.failed("y", 5.0)
    assert t.should_rotate()
    assert not t.should_rotate()  # consumed
    for i in range(5):
        t.failed("z", 10.0 + i)
    assert t.should_rotate()


def test_unauthenticated_limiter_per_source_and_total() -> None:
    lim = UnauthenticatedLimiter(per_source=2, total=3)
    assert lim.try_acquire("a") and lim.try_acquire("a")
    assert not lim.try_acquire("a")
    assert lim.try_acquire("b")
    assert not lim.try_acquire("c")  # total reached
    lim.release("a")
    assert lim.try_acquire("c")
    assert lim.count() == 3 and lim.count("a") == 1
    for src in ("a", "b", "c", "c"):  # the extra release is tolerated
        lim.release(src)
    assert lim.count() == 0


# --- issue 20: penalties per source and credential kind, in-flight attempts, the brake -------


def test_a_view_login_does_not_reset_the_control_guessing_penalty() -> None:
    t = AuthThrottle(base=0.5, ceiling=30.0, global_throttle=GlobalThrottle(limit=10**6))
    for i in range(9):
        t.failed("a", float(i))
    before = t.delay("a", 10.0)
    t.succeeded("a", 10.0, reset=False)  # the view password: the wrong ones may aim at control
    assert t.delay("a", 10.0) == before == 30.0
    t.succeeded("a", 11.0, reset=True)  # the control password: nothing higher to guess
    assert t.delay("a", 11.0) == 0.0


def test_penalties_are_kept_per_credential_kind() -> None:
    t = AuthThrottle(base=1.0, ceiling=30.0, global_throttle=GlobalThrottle(limit=10**6))
    for i in range(4):
        t.failed("a", float(i), kind="invite")
    assert t.delay("a", 5.0, kind="invite") == 8.0
    assert t.delay("a", 5.0, kind="password") == 0.0  # invite guessing does not touch it
    t.succeeded("a", 5.0, kind="password", reset=True)
    assert t.delay("a", 5.0, kind="invite") == 8.0  # nor does a password's success reset it
    assert t.failures("a") == 4 and t.failures("a", kind="password") == 0


def test_parallel_attempts_from_one_source_do_not_share_one_delay() -> None:
    t = AuthThrottle(base=0.5, ceiling=30.0, global_throttle=GlobalThrottle(limit=10**6))
    t.failed("a", 0.0)
    delays = [t.begin("a", 1.0) for _ in range(8)]  # eight at once, none answered yet
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # as if each had failed
    for _ in range(8):
        t.failed("a", 2.0)  # each answer ends its in-flight attempt
    assert t.failures("a") == 9 and t.begin("a", 3.0) == 30.0
    t.succeeded("a", 3.0, reset=True)
    assert t.begin("b", 3.0) == 0.0  # and a fresh source starts at nothing


def test_the_brake_lets_known_sources_and_a_trickle_of_clean_ones_in() -> None:
    g = GlobalThrottle(limit=3, window=60.0, lockout=60.0, trickle=2.0)
    t = AuthThrottle(global_throttle=g)
    t.succeeded("owner", 0.0, reset=True)  # logged in once before the attack
    for i in range(4):
        t.failed("attacker", 1.0 + i)
    assert t.locked(5.0)
    assert not t.admit("attacker", 5.0)  # the guessing source is refused outright
    assert t.admit("owner", 5.0)  # a source that logged in before is not locked out
    assert t.admit("fresh", 5.0)  # a source with no failures: one slot per trickle period
    assert not t.admit("fresh2", 5.5)
    assert t.admit("fresh2", 7.0)
    t.failed("owner", 8.0)
    t.failed("owner", 9.0)
    assert not t.admit("owner", 10.0)  # a known source that guesses loses its pass
    assert not t.locked(66.0) and t.admit("attacker", 66.0)  # the brake ends

