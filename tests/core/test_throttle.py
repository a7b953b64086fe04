"""Login failure throttling per address (RFC 6120 §13.1, password guessing)."""

from __future__ import annotations

from twisted.internet.task import Clock

from xmppd.stream.throttle import LoginThrottle


def make(**kw) -> tuple[Clock, LoginThrottle]:
    clock = Clock()
    return clock, LoginThrottle(clock, **kw)


def test_locks_after_max_failures_then_unlocks():
    """RFC 6120 §13.1: the 5th failure within the window locks the address for the lockout."""
    clock, throttle = make()
    for _ in range(4):
        throttle.failed("192.0.2.1")
        clock.advance(1)
    assert not throttle.is_locked("192.0.2.1")
    throttle.failed("192.0.2.1")
    assert throttle.is_locked("192.0.2.1")
    assert not throttle.is_locked("192.0.2.2")  # per address
    clock.advance(59.9)
    assert throttle.is_locked("192.0.2.1")
    clock.advance(0.1)
    assert not throttle.is_locked("192.0.2.1")
    throttle.failed("192.0.2.1")  # counting starts afresh after a lockout
    assert not throttle.is_locked("192.0.2.1")


def test_sliding_window():
    """RFC 6120 §13.1: failures spread wider than the window never lock."""
    clock, throttle = make(max_failures=3, window=10.0)
    for _ in range(10):
        throttle.failed("192.0.2.1")
        clock.advance(5.1)
    assert not throttle.is_locked("192.0.2.1")


def test_success_clears():
    """RFC 6120 §13.1: a successful login forgets earlier failures."""
    clock, throttle = make(max_failures=3)
    throttle.failed("192.0.2.1")
    throttle.failed("192.0.2.1")
    throttle.succeeded("192.0.2.1")
    throttle.failed("192.0.2.1")
    assert not throttle.is_locked("192.0.2.1")
    assert len(throttle) == 1


def test_failures_while_locked_do_not_extend():
    """RFC 6120 §13.1: the lockout is fixed; retries while locked do not prolong it."""
    clock, throttle = make(max_failures=1, lockout=30.0)
    throttle.failed("192.0.2.1")
    clock.advance(20)
    throttle.failed("192.0.2.1")
    clock.advance(10)
    assert not throttle.is_locked("192.0.2.1")


def test_bounded_tracking_evicts_oldest():
    """RFC 6120 §13.1: memory stays bounded; the address idle longest is forgotten first."""
    clock, throttle = make(max_failures=2, max_tracked=3)
    throttle.failed("192.0.2.1")
    throttle.failed("192.0.2.1")  # locked
    for n in range(2, 5):
        clock.advance(1)
        throttle.failed(f"192.0.2.{n}")
    assert len(throttle) == 3
    assert not throttle.is_locked("192.0.2.1")  # evicted
    for n in range(5, 1000):
        throttle.failed(f"192.0.2.{n % 250}")
    assert len(throttle) <= 3


def test_stale_records_forgotten():
    """RFC 6120 §13.1: records with no lock and no failure in the window are dropped."""
    clock, throttle = make()
    for n in range(100):
        throttle.failed(f"192.0.2.{n}")
    clock.advance(61)
    throttle.failed("198.51.100.1")
    assert len(throttle) == 1


def test_ipv6_counts_per_prefix():
    """RFC 6120 §13.1: IPv6 failures count per /64; IPv4-mapped addresses as IPv4."""
    clock, throttle = make(max_failures=2)
    throttle.failed("2001:db8::1")
    throttle.failed("2001:db8::2")
    assert throttle.is_locked("2001:db8::ffff")
    assert not throttle.is_locked("2001:db8:0:1::1")
    throttle.failed("::ffff:192.0.2.7")
    throttle.failed("192.0.2.7")
    assert throttle.is_locked("192.0.2.7")
    throttle.failed("not-an-ip")  # e.g. a UNIX socket: kept as is
    assert not throttle.is_locked("not-an-ip")
