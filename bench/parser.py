"""Micro-benchmark of the stream parser and domish serialisation (prints figures, asserts nothing).

    python bench/parser.py [messages]

Feeds a stream of typical ~300-byte chat messages through StreamParser in
64 KiB chunks (Twisted's TCP read size) and in 1 KiB chunks, then times
``toXml``. Twisted's own ``domish.ExpatElementStream`` is timed on the same
bytes as a reference point. The last lines time a hostile case: a tag that
never ends, trickled in small pieces (expat rescans an unfinished tag on every
feed until ``max_tag_bytes`` stops it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from twisted.words.xish import domish

from xmppd.errors import StreamError
from xmppd.stream.parser import Limits, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


def message(i: int) -> bytes:
    return (
        f"<message to='juliet@capulet.example/balcony' from='romeo@montague.example/orchard'"
        f" type='chat' id='msg-{i:08d}' xml:lang='en'><body>Deny thy father &amp; refuse"
        f" thy name (#{i})</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
        f"<request xmlns='urn:xmpp:receipts'/></message>\n"
    ).encode()


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def parse_ours(data: bytes, chunk: int, sink: Callable[[domish.Element], object]) -> None:
    parser = StreamParser(lambda h: None, sink, lambda: None)
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])


def parse_twisted(data: bytes, chunk: int, sink: Callable[[domish.Element], object]) -> None:
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = sink
    stream.DocumentEndEvent = lambda: None
    for i in range(0, len(data), chunk):
        stream.parse(data[i : i + chunk])


def trickle(piece: int) -> None:
    parser = StreamParser(lambda h: None, lambda e: None, lambda: None, Limits())
    parser.feed(HEADER + b"<message to='")
    try:
        while True:
            parser.feed(b"a" * piece)
    except StreamError:
        pass


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    body = b"".join(message(i) for i in range(n))
    data = HEADER + body
    mb = len(body) / 1e6
    print(f"{n} messages, {len(body) / n:.0f} bytes each, {mb:.1f} MB")
    for label, fn in (("StreamParser", parse_ours), ("domish.ExpatElementStream", parse_twisted)):
        for chunk in (65536, 1024):
            # Stanzas are dropped as they come, as a router would: no GC pressure from a pile.
            t = best(lambda fn=fn, chunk=chunk: fn(data, chunk, lambda e: None))
            print(f"{label:26} {chunk:>6}-byte chunks: {n / t:>9,.0f} stanzas/s {mb / t:6.1f} MB/s")
    elements: list[domish.Element] = []
    parse_ours(data, 65536, elements.append)
    assert len(elements) == n
    t = best(lambda: [e.toXml(defaultUri="jabber:client") for e in elements])
    print(f"{'domish toXml':26} {'':>19}  {n / t:>9,.0f} stanzas/s")
    for piece in (64, 1):
        t = best(lambda piece=piece: trickle(piece), repeat=1)
        print(
            f"hostile: endless tag in {piece}-byte pieces, max_tag_bytes hit in {t * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
