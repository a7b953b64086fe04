"""Per-address login failure throttling (RFC 6120 §13.1: guard against
password guessing; Tigase's lock after failures in a window is the model).

While an address is locked the stream answers every ``<auth>`` with
``<not-authorized/>`` without looking at the credentials, so a locked client
learns nothing, not even that it is locked (RFC 6120 §6.5.10).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque

from twisted.internet.interfaces import IReactorTime

__all__ = ["LoginThrottle"]


class _Record:
    __slots__ = ("failures", "locked_until", "last")

    def __init__(self, max_failures: int) -> None:
        self.failures: deque[float] = deque(maxlen=max_failures)  # recent failure times
        self.locked_until = 0.0
        self.last = 0.0


class LoginThrottle:
    """Locks an address for ``lockout`` seconds once it has failed
    ``max_failures`` times within a sliding ``window`` of seconds.

    Memory is bounded: at most ``max_tracked`` addresses are remembered; the
    one whose last failure is oldest goes first, and records that can no
    longer matter (no lock, no failure within the window) are dropped as new
    failures arrive. IPv6 addresses count per ``/ipv6_prefix`` network, since
    one host usually holds a whole /64.
    """

    def __init__(
        self,
        clock: IReactorTime,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 60.0,
        max_tracked: int = 100_000,
        ipv6_prefix: int = 64,
    ) -> None:
        if max_failures < 1 or max_tracked < 1:
            raise ValueError("max_failures and max_tracked must be at least 1")
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._max_tracked = max_tracked
        self._ipv6_prefix = ipv6_prefix
        self._records: OrderedDict[str, _Record] = OrderedDict()  # oldest last failure first

    def __len__(self) -> int:
        return len(self._records)

    def is_locked(self, ip: str) -> bool:
        record = self._records.get(self._key(ip))
        return record is not None and record.locked_until > self._clock.seconds()

    def failed(self, ip: str) -> None:
        now = self._clock.seconds()
        self._forget_stale(now)
        key = self._key(ip)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record(self._max_failures)
            while len(self._records) > self._max_tracked:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(key)
        record.last = now
        if record.locked_until > now:
            return  # already locked; failures while locked do not extend it
        failures = record.failures
        failures.append(now)
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if len(failures) >= self._max_failures:
            record.locked_until = now + self._lockout
            failures.clear()

    def succeeded(self, ip: str) -> None:
        self._records.pop(self._key(ip), None)

    def _forget_stale(self, now: float) -> None:
        # The front holds the oldest last failures: stop at the first that matters.
        while self._records:
            record = next(iter(self._records.values()))
            if record.last > now - self._window or record.locked_until > now:
                return
            self._records.popitem(last=False)

    def _key(self, ip: str) -> str:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ip  # not an IP address (a UNIX socket, a test name): as is
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, self._ipv6_prefix), strict=False))
        return str(address)
