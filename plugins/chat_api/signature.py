"""QuickBlox session signatures (SDK-CONTRACT §3.2): HMAC over the sorted
``name=value`` pairs, a bounded timestamp skew and no replayed nonce."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from typing import Any

from plugins.chat_api.rest import ApiError, flatten

MAX_NONCES = 100_000  # remembered (app, nonce, timestamp) triples


def signed_message(params: dict[str, Any]) -> str:
    """§3.2: every parameter but ``signature`` as ``name=value`` (nested as
    ``user[login]=v``), values not URL-encoded, sorted, joined by ``&``."""
    pairs = [f"{k}={v}" for k, v in flatten(params) if k != "signature"]
    return "&".join(sorted(pairs))


def sign(secret: str, message: str, sha256: bool = False) -> str:
    """Lowercase hex HMAC-SHA1 (or HMAC-SHA256) of ``message`` keyed by ``secret``."""
    digest = hashlib.sha256 if sha256 else hashlib.sha1
    return hmac.new(secret.encode(), message.encode(), digest).hexdigest()


def check_signature(params: dict[str, Any], secret: str) -> None:
    """Raise 422 unless ``signature`` is the HMAC of the other parameters. A
    64-hex signature is SHA-256 (the SDK's ``config.hash = 'sha256'``)."""
    given = str(params.get("signature", "")).lower()
    expected = sign(secret, signed_message(params), sha256=len(given) == 64)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(422, {"base": ["Unexpected signature"]})


class NonceStore:
    """The (app, nonce, timestamp) triples seen within the skew window.

    Per node and in memory: a replay must arrive within ``2 * skew`` seconds of
    the first use, and a replay sent to another node of a cluster is not caught
    (sharing this set would need the cluster backend; the signature, the skew
    bound and TLS still hold there). Bounded: the oldest are forgotten first.
    """

    def __init__(self, clock: Any, skew: float, size: int = MAX_NONCES) -> None:
        self.clock = clock
        self.skew = skew
        self.size = size
        self.seen: OrderedDict[tuple[int, str, str], float] = OrderedDict()

    def check(self, app_id: int, nonce: str, timestamp: str) -> None:
        """Raise 422 for a timestamp outside the skew or a triple seen before."""
        now = self.clock.seconds()
        try:
            ts = float(timestamp)
        except ValueError:
            raise ApiError(422, {"timestamp": ["is not a number"]}) from None
        if abs(now - ts) > self.skew:
            raise ApiError(
                422, {"timestamp": [f"is more than {int(self.skew)} seconds from server time"]}
            )
        while self.seen and next(iter(self.seen.values())) < now:
            self.seen.popitem(last=False)
        key = (app_id, nonce, timestamp)
        if key in self.seen:
            raise ApiError(422, {"nonce": ["has already been used"]})
        self.seen[key] = now + 2 * self.skew
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
