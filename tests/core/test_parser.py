"""The hardened XML stream parser (RFC 6120 §4, §11; SECURITY.md §4.1, §4.2)."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from typing import Any

import pytest
from twisted.words.xish import domish

from xmppd.errors import StreamError
from xmppd.stream import parser as parser_module
from xmppd.stream.parser import NS_STREAMS, NS_XML, Limits, StreamHeader, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
H = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
PRE_AUTH = Limits(max_stanza_bytes=8192, max_elements=32)

STANZAS = (
    "<message to='juliet@example.com/balcony' type='chat' id='m1' xml:lang='fr'>"
    "<body>h\u00e9llo &amp; &lt;bye&gt; \U0001f600 &#x263A;\nsecond line</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    "<x xmlns='jabber:x:oob'><url>https://example.com/?a=1&amp;b=2</url></x>"
    "<f:thing xmlns:f='urn:example:f' f:attr='v'><inner>text</inner></f:thing>"
    "<bare xmlns=''><child/></bare>"
    "<body xml:lang='de'><![CDATA[<not a tag> & ]]>tail</body>"
    "</message>\n \t "
    "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
    "<presence><show>away</show><status>mixed <b>bold</b> text</status></presence>"
    " "
    "<r xmlns='urn:xmpp:sm:3'/>"
).encode()


class Recorder:
    """Collects what the parser reports."""

    def __init__(self, **kw: Any) -> None:
        self.headers: list[StreamHeader] = []
        self.elements: list[domish.Element] = []
        self.ends = 0
        self.parser = StreamParser(self.headers.append, self.elements.append, self.end, **kw)

    def end(self) -> None:
        self.ends += 1

    def feed(self, data: bytes, chunk: int | None = None) -> Recorder:
        if chunk is None:
            self.parser.feed(data)
        else:
            for i in range(0, len(data), chunk):
                self.parser.feed(data[i : i + chunk])
        return self


def feed(data: bytes, chunk: int | None = None, **kw: Any) -> Recorder:
    return Recorder(**kw).feed(data, chunk)


def error(data: bytes, chunk: int | None = None, **kw: Any) -> StreamError:
    with pytest.raises(StreamError) as info:
        feed(data, chunk, **kw)
    return info.value


def condition(data: bytes, chunk: int | None = None, **kw: Any) -> str:
    return error(data, chunk, **kw).condition


def dump(node: Any) -> Any:
    """Everything about a domish tree that chunking must not change."""
    if isinstance(node, str):
        return node
    return (
        node.uri,
        node.name,
        node.defaultUri,
        dict(node.attributes),
        dict(node.localPrefixes),
        [dump(c) for c in node.children],
    )


def parse_one(xml: bytes, **kw: Any) -> domish.Element:
    (element,) = feed(H + xml, **kw).elements
    return element


# -- normal streams -------------------------------------------------------------


def test_header_stanzas_and_end():
    """RFC 6120 §4.7: the header's attributes, prefix and namespaces are reported; §4.4: the
    closing tag ends the stream."""
    rec = feed(HEADER + STANZAS + b"</stream:stream>")
    (header,) = rec.headers
    assert header == StreamHeader(
        {"to": "example.com", "version": "1.0", "xml:lang": "en"},
        "stream",
        NS_STREAMS,
        "jabber:client",
    )
    assert [(e.uri, e.name) for e in rec.elements] == [
        ("jabber:client", "message"),
        ("jabber:client", "iq"),
        ("jabber:client", "presence"),
        ("urn:xmpp:sm:3", "r"),
    ]
    assert rec.ends == 1


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000])
def test_chunk_boundaries_do_not_matter(chunk):
    """RFC 6120 §4.2: a stream is one document however TCP splits it; elements are identical."""
    data = HEADER + STANZAS + b"</stream:stream>"
    whole = feed(data)
    split = feed(data, chunk)
    assert [dump(e) for e in split.elements] == [dump(e) for e in whole.elements]
    assert split.headers == whole.headers and split.ends == whole.ends == 1


def test_random_chunk_boundaries():
    """RFC 6120 §4.2: random splits (inside multi-byte characters, entities, CDATA) change
    nothing."""
    data = HEADER + STANZAS * 5
    expected = [dump(e) for e in feed(data).elements]
    rng = random.Random(6120)
    for _ in range(30):
        rec = Recorder()
        i = 0
        while i < len(data):
            n = rng.randint(1, 40)
            rec.parser.feed(data[i : i + n])
            i += n
        assert [dump(e) for e in rec.elements] == expected


def test_text_is_one_string_per_run():
    """RFC 6120 §11.7: text split by lines, entities and chunks is joined into one child."""
    body = parse_one(b"<message><body>a\nb &amp; c<![CDATA[d]]>e</body></message>").body
    assert body.children == ["a\nb & cde"]
    rec = feed(H + b"<message><body>x" + b"y" * 5000 + b"z</body></message>", chunk=1)
    assert rec.elements[0].body.children == ["x" + "y" * 5000 + "z"]


def test_round_trip_serialisation():
    """RFC 6120 §4.8.2: content-namespace stanzas serialise with the right namespaces."""
    message = parse_one(b"<message to='a@b' type='chat'><body>hi &amp; bye</body></message>")
    assert message.uri == message.defaultUri == "jabber:client"
    assert message.body.uri == message.body.defaultUri == "jabber:client"
    assert message.toXml() == (
        "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi &amp; bye</body></message>"
    )
    assert message.toXml(defaultUri="jabber:client") == (
        "<message to='a@b' type='chat'><body>hi &amp; bye</body></message>"
    )
    again = parse_one(message.toXml(defaultUri="jabber:client").encode())
    assert dump(again) == dump(message)


def test_round_trip_keeps_foreign_namespaces():
    """RFC 6120 §4.8.4: extension payloads keep their namespaces and xml:lang through toXml."""
    for element in feed(H + STANZAS).elements:
        again = parse_one(element.toXml(defaultUri="jabber:client").encode())
        assert again.toXml() == element.toXml()
    message = feed(H + STANZAS).elements[0]
    assert message.attributes[(NS_XML, "lang")] == "fr"
    oob = message.x
    assert (oob.uri, oob.url.uri) == ("jabber:x:oob", "jabber:x:oob")
    thing = next(message.elements("urn:example:f", "thing"))
    assert thing.attributes[("urn:example:f", "attr")] == "v"
    assert (thing.inner.uri, thing.defaultUri) == ("jabber:client", "jabber:client")
    bare = message.bare
    assert (bare.uri, bare.child.uri) == ("", "")


def test_whitespace_keepalives_are_ignored():
    """RFC 6120 §4.6.1, §11.7: whitespace between stanzas is allowed and reports nothing."""
    rec = feed(H + b"  \n\t \r\n" + b"<presence/>" + b" " * 100_000, chunk=500)
    assert len(rec.elements) == 1


def test_stray_text_is_invalid_xml():
    """RFC 6120 §4.9.3.9, §11.7: only whitespace may sit between top-level elements."""
    assert condition(H + b"<presence/>hello<presence/>") == "invalid-xml"
    assert condition(H + b"&amp;") == "invalid-xml"


def test_predefined_entities_and_char_refs():
    """RFC 6120 §11.1: the five predefined entities and character references are allowed."""
    body = parse_one(b"<message><body>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;</body></message>").body
    assert str(body) == "<>&'\"AB"


# -- §4.1 hostile headers and well-formedness ---------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"<'/>", b"\x16\x03\x01\x02\x00", b"hello world\n"],
)
def test_h1_garbage(data):
    """RFC 6120 §4.9.3.13 (H1): garbage instead of a header is not-well-formed."""
    assert condition(data) == "not-well-formed"


BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(b"<!ENTITY lol%d '%s'>" % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    + b"]><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams'>&lol9;"
)


def test_h2_billion_laughs():
    """RFC 6120 §4.9.3.18, §11.1 (H2): a DTD is restricted-xml before any entity is declared."""
    tracemalloc.start()
    try:
        rec = Recorder()
        with pytest.raises(StreamError) as info:
            rec.feed(BILLION_LAUGHS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.condition == "restricted-xml"
    assert rec.headers == [] and peak < 1_000_000


@pytest.mark.parametrize(
    "inside",
    [b"<!DOCTYPE x>", b"<!ENTITY a 'b'>", b"<message><!ENTITY a 'b'></message>"],
)
def test_h2_dtd_inside_the_stream(inside):
    """RFC 6120 §11.1 (H2): DTD markup inside the stream is restricted-xml too."""
    assert condition(H + inside) == "restricted-xml"
    assert condition(H + inside, chunk=1) == "restricted-xml"


def test_h3_external_entity(tmp_path):
    """RFC 6120 §11.1 (H3): an external entity is refused and its file never read."""
    canary = tmp_path / "canary"
    canary.write_text("CANARY")
    data = (
        f"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY x SYSTEM '{canary.as_uri()}'>]>".encode()
        + H
        + b"<message><body>&x;</body></message>"
    )
    rec = Recorder()
    with pytest.raises(StreamError) as info:
        rec.feed(data)
    assert info.value.condition == "restricted-xml" and rec.elements == []
    # Without a DTD, the reference is simply undefined: never resolved.
    assert condition(H + b"<message><body>&x;</body></message>") in (
        "not-well-formed",
        "restricted-xml",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"<!-- x -->" + H,
        H + b"<!-- x -->",
        H + b"<message><!-- x --></message>",
        H + b"<message><body>a<!-- x -->b</body></message>",
    ],
)
def test_h4_comment(data):
    """RFC 6120 §11.1 (H4): a comment anywhere is restricted-xml."""
    assert condition(data) == "restricted-xml"


@pytest.mark.parametrize(
    "data",
    [b"<?foo bar?>" + H, H + b"<?foo bar?>", H + b"<message><?foo bar?></message>"],
)
def test_h5_processing_instruction(data):
    """RFC 6120 §11.1 (H5): a processing instruction is restricted-xml."""
    assert condition(data) == "restricted-xml"


def test_h6_stream_namespace():
    """RFC 6120 §4.9.3.10 (H6): a stream element outside the streams namespace is
    invalid-namespace."""
    assert (
        condition(b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>")
        == "invalid-namespace"
    )
    assert condition(b"<stream:features xmlns:stream='" + NS_STREAMS.encode() + b"'>") == (
        "invalid-namespace"
    )
    assert condition(b"<message xmlns='jabber:client'>") == "invalid-namespace"


@pytest.mark.parametrize(
    "default", [b" xmlns='jabber:server'", b" xmlns='urn:whatever'", b" xmlns=''", b""]
)
def test_h7_content_namespace(default):
    """RFC 6120 §4.9.3.10 (H7): a content namespace other than jabber:client is
    invalid-namespace."""
    data = b"<stream:stream" + default + b" xmlns:stream='http://etherx.jabber.org/streams'>"
    assert condition(data) == "invalid-namespace"


def test_content_namespace_is_configurable():
    """RFC 6120 §4.8.2: a server-to-server parser expects jabber:server."""
    data = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
    rec = feed(data + b"<message/>", content_ns="jabber:server")
    assert rec.headers[0].default_ns == "jabber:server"
    assert rec.elements[0].uri == "jabber:server"
    assert condition(H, content_ns="jabber:server") == "invalid-namespace"


@pytest.mark.parametrize(
    "data",
    [
        b"<foo:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        b"<foo:stream xmlns='jabber:client' xmlns:foo='http://etherx.jabber.org/streams'>",
        b"<stream xmlns='http://etherx.jabber.org/streams'>",
    ],
)
def test_h8_stream_prefix(data):
    """RFC 6120 §4.9.3.2, §4.8.1 (H8): a stream prefix other than 'stream' is
    bad-namespace-prefix."""
    assert condition(data) == "bad-namespace-prefix"
    assert condition(data, chunk=1) == "bad-namespace-prefix"


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0' encoding='ISO-8859-1'?>" + H,
        b"<?xml version='1.0' encoding='UTF-16'?>" + H,
        b"\xff\xfe" + H.decode().encode("utf-16-le"),
        b"\xfe\xff" + H.decode().encode("utf-16-be"),
        H.decode().encode("utf-16-le"),  # no BOM: expat would still detect UTF-16
        H.decode().encode("utf-16-be"),
        H + b"<message><body>\xc0\x80</body></message>",  # overlong NUL
        H + b"<message><body>\xed\xa0\x80</body></message>",  # lone surrogate
        H + b"<message><body>\x80</body></message>",  # stray continuation byte
        H + b"<message><body>\xf5\x80\x80\x80</body></message>",  # beyond U+10FFFF
        H + b"<message to='\xc3'/>",  # truncated sequence in an attribute
    ],
)
def test_h12_encoding(data):
    """RFC 6120 §4.9.3.22, §11.6 (H12): anything but UTF-8 is unsupported-encoding."""
    assert condition(data) == "unsupported-encoding"
    assert condition(data, chunk=1) == "unsupported-encoding"


def test_utf8_declaration_and_bom_are_fine():
    """RFC 6120 §11.6: a UTF-8 declaration (any case) and a UTF-8 BOM are accepted."""
    assert feed(b"<?xml version='1.0' encoding='utf-8'?>" + H + b"<presence/>").elements
    assert feed(b"\xef\xbb\xbf" + H + b"<presence/>", chunk=1).elements


@pytest.mark.parametrize(
    "stanza",
    [
        b"<message><body>&#x0;</body></message>",
        b"<message><body>\x01</body></message>",
        b"<message><body>\x00</body></message>",
        "<message><body>\ufffe</body></message>".encode(),
        b"<message><body>&#xFFFE;</body></message>",
        b"<message to='&#x1;'/>",
        b"<message to='\x1b'/>",
        "<message to='\uffff'/>".encode(),
    ],
)
def test_h13_forbidden_characters(stanza):
    """RFC 6120 §4.9.3.13, §11.1 (H13): characters XML 1.0 forbids are not-well-formed."""
    assert condition(H + stanza) == "not-well-formed"


@pytest.mark.parametrize(
    "stanza",
    [
        b"<message to='a' to='b'/>",
        b"<x:y/>",
        b"<message x:to='a'/>",
        b"<message><body></message>",
        b"<message to=a/>",
    ],
)
def test_h14_malformed_stanzas(stanza):
    """RFC 6120 §4.9.3.13 (H14): duplicate attributes, undeclared prefixes, bad nesting are
    not-well-formed."""
    assert condition(H + stanza) == "not-well-formed"


def test_h16_second_header():
    """RFC 6120 §4.9.3.13, §5.4.3.3, §6.4.6 (H16): a header inside the open stream is
    not-well-formed."""
    assert condition(H + b"<presence/>" + H) == "not-well-formed"
    assert condition(H + b"<?xml version='1.0'?>" + H) == "not-well-formed"
    assert condition(H + H, chunk=1) == "not-well-formed"


def test_data_after_the_end_is_not_well_formed():
    """RFC 6120 §4.4: nothing but whitespace may follow </stream:stream>."""
    rec = feed(H + b"</stream:stream>  ")
    assert rec.ends == 1
    with pytest.raises(StreamError) as info:
        rec.feed(b"<presence/>")
    assert info.value.condition == "not-well-formed"


def test_space_in_namespace_name():
    """RFC 6120 §4.9.3.10: a namespace name with a space (never a URI) is refused."""
    # expat >= 2.4.5 refuses it itself (CVE-2022-25236); older ones reach our check.
    assert condition(H + b"<x xmlns='urn:a b'/>") in ("not-well-formed", "invalid-namespace")


# -- §4.2 size and depth ------------------------------------------------------------


def test_h17_oversized_stanza():
    """RFC 6120 §4.9.3.14 (H17): a stanza over the byte limit is policy-violation."""
    big = H + b"<message><body>" + b"x" * 300 * 1024 + b"</body></message>"
    err = error(big)
    assert err.condition == "policy-violation" and "max_stanza_bytes" in err.text
    assert (err.appCondition.uri, err.appCondition.name) == ("urn:xmpp:errors", "stanza-too-big")
    assert condition(big, chunk=4096) == "policy-violation"
    pre_auth = H + b"<auth>" + b"x" * 9 * 1024 + b"</auth>"
    assert condition(pre_auth, limits=PRE_AUTH) == "policy-violation"
    assert feed(pre_auth).elements  # fine under the default limit


def test_h17_caught_while_arriving():
    """RFC 6120 §4.9.3.14 (H17): the limit trips before the oversized stanza is complete."""
    rec = Recorder(limits=PRE_AUTH)
    rec.feed(H + b"<message><body>")
    fed = 0
    with pytest.raises(StreamError) as info:
        while True:
            rec.feed(b"x" * 512)
            fed += 512
    assert info.value.condition == "policy-violation" and fed <= 8192


def test_byte_limit_boundary():
    """RFC 6120 §4.9.3.14: a stanza of exactly the limit passes; one more byte fails."""
    limits = Limits(max_stanza_bytes=1000)
    head = b"<message><body>"
    tail = b"</body></message>"
    # The count runs from "<" to the start of the top-level end tag.
    exact = head + b"x" * (1000 - len(head) - len(b"</body>")) + tail
    assert feed(H + exact, limits=limits).elements
    over = head + b"x" * (1001 - len(head) - len(b"</body>")) + tail
    assert condition(H + over, limits=limits) == "policy-violation"
    assert condition(H + over, chunk=10, limits=limits) == "policy-violation"


def test_many_small_stanzas_in_one_chunk():
    """RFC 6120 §4.9.3.14: the byte limit is per stanza, not per chunk."""
    data = H + b"<presence/>" * 10_000
    assert len(feed(data, limits=PRE_AUTH).elements) == 10_000


def test_h18_deep_nesting_fails_fast():
    """RFC 6120 §4.9.3.14 (H18): 100 000 nested elements in one chunk fail at the depth cap,
    quickly and in bounded memory."""
    data = H + b"<a>" * 100_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        err = error(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.condition == "policy-violation" and "max_depth" in err.text
    assert time.perf_counter() - started < 0.5
    assert peak < 2_000_000


def test_depth_boundary():
    """RFC 6120 §4.9.3.14: max_depth levels below the stream pass; one more fails."""
    limits = Limits(max_depth=5)
    assert feed(H + b"<a>" * 5 + b"</a>" * 5, limits=limits).elements
    assert condition(H + b"<a>" * 6, limits=limits) == "policy-violation"


def test_element_count():
    """RFC 6120 §4.9.3.14 (H18): more than max_elements elements in a stanza is
    policy-violation."""
    ok = H + b"<message>" + b"<a/>" * 999 + b"</message>"
    assert feed(ok).elements
    err = error(H + b"<message>" + b"<a/>" * 1000 + b"</message>")
    assert err.condition == "policy-violation" and "max_elements" in err.text
    assert condition(H + b"<message>" + b"<a/>" * 32 + b"</message>", limits=PRE_AUTH) == (
        "policy-violation"
    )


def test_h19_many_attributes():
    """RFC 6120 §4.9.3.14 (H19): too many attributes, xmlns declarations included, is
    policy-violation."""
    attrs = b"".join(b" a%d='1'" % i for i in range(64))
    assert feed(H + b"<message" + attrs + b"/>").elements
    err = error(H + b"<message" + attrs + b" one='more'/>")
    assert err.condition == "policy-violation" and "max_attributes" in err.text
    assert condition(H + b"<message xmlns:p='urn:p'" + attrs + b"/>") == "policy-violation"
    assert condition(H + b"<a " + b"".join(b"a%d='1' " % i for i in range(100_000)) + b"/>") == (
        "policy-violation"
    )


@pytest.mark.parametrize(
    "data",
    [
        H + b"<message to='" + b"a" * 10_000_000 + b"'/>",
        H + b"<" + b"a" * 10_000_000 + b"/>",
        H + b"<message " + b"a" * 10_000_000 + b"='1'/>",
    ],
)
def test_h19_huge_value_or_name(data):
    """RFC 6120 §4.9.3.14 (H19): a 10 MB attribute value or name is policy-violation in
    bounded memory."""
    tracemalloc.start()
    try:
        err = error(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.condition == "policy-violation"
    assert peak < 2_000_000  # the 10 MB chunk is the caller's; we never copy it


def test_h20_never_ending_tag():
    """RFC 6120 §4.9.3.14 (H20): an opening tag that never ends trips the byte limit."""
    for limits in (Limits(), PRE_AUTH):
        rec = Recorder(limits=limits)
        rec.feed(H + b"<message to='")
        fed = 0
        with pytest.raises(StreamError) as info:
            while fed < 10 * limits.max_stanza_bytes:
                rec.feed(b"a" * 1000)
                fed += 1000
        assert info.value.condition == "policy-violation"
        assert fed <= limits.max_stanza_bytes


def test_tag_still_arriving_is_capped():
    """RFC 6120 §4.9.3.14 (H19, H20): a tag trickled a byte at a time stops at max_tag_bytes,
    so expat's rescans stay cheap."""
    rec = Recorder()
    rec.feed(H + b"<message to='")
    fed = 0
    started = time.perf_counter()
    with pytest.raises(StreamError) as info:
        while True:
            rec.feed(b"a")
            fed += 1
    assert "max_tag_bytes" in info.value.text and fed <= Limits().max_tag_bytes
    assert time.perf_counter() - started < 2


def test_tag_cap_leaves_real_tags_alone():
    """RFC 6120 §4.9.3.14: a long but plausible tag passes in pieces; a whole one in any size."""
    url = b"https://upload.example.com/slot/" + b"a" * 15_000
    stanza = b"<iq type='result' id='u1'><slot xmlns='urn:xmpp:http:upload:0'><put url='"
    stanza += url + b"'/></slot></iq>"
    assert feed(H + stanza, chunk=100).elements
    assert feed(H + stanza.replace(b"a" * 15_000, b"a" * 50_000)).elements


def test_h21_many_namespace_declarations():
    """RFC 6120 §4.9.3.14 (H21): thousands of namespace declarations are policy-violation."""
    decls = b"".join(b" xmlns:p%d='urn:p:%d'" % (i, i) for i in range(5000))
    err = error(H + b"<message" + decls + b"/>")
    assert err.condition == "policy-violation" and "max_attributes" in err.text


def test_header_size_cap():
    """RFC 6120 §4.9.3.14: the stream header must fit in MAX_HEADER_BYTES."""
    big = b" from='" + b"a" * parser_module.MAX_HEADER_BYTES + b"'"
    data = H[:-1] + big + b">"
    assert condition(data) == "policy-violation"
    assert condition(data, chunk=7) == "policy-violation"
    assert condition(b" " * parser_module.MAX_HEADER_BYTES + H) == "policy-violation"
    assert feed(H[:-1] + b" from='" + b"a" * 3000 + b"'><presence/>").elements


# -- close, limits and callbacks -----------------------------------------------------


def test_close_discards_the_rest_of_the_chunk():
    """RFC 6120 §5.3.3, §5.4.3.3: bytes after <starttls/> in the same chunk are discarded."""
    seen: list[domish.Element] = []
    parser: StreamParser

    def on_element(element: domish.Element) -> None:
        seen.append(element)
        if element.name == "starttls":
            parser.close()

    parser = StreamParser(lambda h: None, on_element, lambda: None)
    parser.feed(
        H + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        b"<iq type='set'><query xmlns='jabber:iq:auth'/></iq><!-- injected --><garbage"
    )
    assert [e.name for e in seen] == ["starttls"]
    parser.feed(b"<presence/></stream:stream>")  # a no-op, not an error
    assert len(seen) == 1


def test_close_from_on_header():
    """RFC 6120 §4.9.1: a caller rejecting the header can stop the parser at once."""
    seen: list[domish.Element] = []
    parser: StreamParser

    def on_header(header: StreamHeader) -> None:
        parser.close()

    parser = StreamParser(on_header, seen.append, lambda: None)
    parser.feed(H + b"<presence/>")
    assert seen == []


def test_limits_tightened_and_relaxed_between_stanzas():
    """RFC 6120 §6.4.6: a stream relaxes the pre-authentication limits after success."""
    seen: list[str] = []
    parser: StreamParser

    def on_element(element: domish.Element) -> None:
        seen.append(element.name)
        if element.name == "success":
            parser.limits = Limits()
        elif element.name == "logout":
            parser.limits = PRE_AUTH

    parser = StreamParser(lambda h: None, on_element, lambda: None, limits=PRE_AUTH)
    big = b"<message><body>" + b"x" * 10_000 + b"</body></message>"
    parser.feed(H + b"<success/>" + big + b"<logout/>")
    assert seen == ["success", "message", "logout"]
    with pytest.raises(StreamError) as info:
        parser.feed(big)
    assert info.value.condition == "policy-violation"


def test_callback_stream_error_comes_out_unchanged():
    """RFC 6120 §4.9.3.6: a StreamError raised by the caller's on_header is the one feed
    raises."""
    raised = StreamError("host-unknown")

    def on_header(header: StreamHeader) -> None:
        raise raised

    parser = StreamParser(on_header, lambda e: None, lambda: None)
    with pytest.raises(StreamError) as info:
        parser.feed(H)
    assert info.value is raised
    parser.feed(b"<presence/>")  # closed: a no-op


def test_callback_exception_propagates():
    """RFC 6120 §4.9.3.11: a crash in on_element reaches the caller, who answers
    internal-server-error."""

    def on_element(element: domish.Element) -> None:
        raise ValueError("boom")

    parser = StreamParser(lambda h: None, on_element, lambda: None)
    with pytest.raises(ValueError, match="boom"):
        parser.feed(H + b"<presence/><presence/>")
    parser.feed(b"<presence/>")


def test_error_closes_the_parser():
    """RFC 6120 §4.9.1: after a stream error the parser reports nothing more."""
    rec = Recorder()
    with pytest.raises(StreamError):
        rec.feed(H + b"<!-- x -->")
    rec.feed(b"<presence/>")
    assert rec.elements == []


# -- recycling the expat parser --------------------------------------------------------


def test_recycling_is_invisible(monkeypatch):
    """RFC 6120 §4.2: replacing expat between stanzas changes no element, whatever the chunks."""
    monkeypatch.setattr(parser_module, "RECYCLE_BYTES", 300)
    header = H[:-1] + b" xmlns:e='urn:example:e'>"
    data = header + (STANZAS + b"<message><e:x e:y='1'/></message>") * 10
    monkeypatch.setattr(parser_module, "RECYCLE_BYTES", 1 << 40)
    expected = [dump(e) for e in feed(data).elements]
    monkeypatch.setattr(parser_module, "RECYCLE_BYTES", 300)
    for chunk in (None, 1, 5, 64, 301):
        rec = Recorder()
        first = rec.parser._parser
        rec.feed(data, chunk)
        assert rec.parser._parser is not first
        assert [dump(e) for e in rec.elements] == expected
    # Limits still count from the right offsets after a recycle.
    limits = Limits(max_stanza_bytes=1000)
    over = b"<message><body>" + b"x" * 1000 + b"</body></message>"
    assert condition(data + over, chunk=7, limits=limits) == "policy-violation"
    assert condition(data + b"<message to='" + b"a" * 2000, chunk=7, limits=limits) == (
        "policy-violation"
    )


def test_unique_names_do_not_grow_memory():
    """RFC 6120 §13.12: a long stream of never-repeated names keeps parser memory bounded."""
    rec = Recorder()
    rec.feed(H)
    tracemalloc.start()
    try:
        for j in range(40):
            chunk = "".join(f"<m{j}x{i} a{j}y{i}='1'/>" for i in range(2000)).encode()
            rec.feed(chunk)
            rec.elements.clear()
        gc.collect()
        current = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # ~2 MB of unique names: without recycling, expat and its name cache keep ~26 MB.
    assert current < 1_000_000
