"""The one hardened XML stream parser behind every client transport (RFC 6120 §4, §11).

TCP c2s feeds it raw socket bytes; WebSocket and BOSH feed it their frames and
bodies, so every path that reads client XML shares one configuration (the
lesson of CVE-2022-0217). Built on expat with namespace processing; stanzas
come out as ``domish.Element`` trees.

Decisions:

- Restricted XML (§11.1): a DOCTYPE, entity declaration, comment or processing
  instruction anywhere is ``restricted-xml``; entities are never expanded.
- Only UTF-8 (§11.6): another declared encoding, a UTF-16 byte order mark or an
  invalid UTF-8 sequence is ``unsupported-encoding``.
- A second ``<stream:stream>`` inside the open stream is ``not-well-formed``:
  a restart (§5.4.3.3, §6.4.6) begins a new XML document on a new parser, so a
  header inside the old document is a second root element. A client that
  repeats the XML declaration gets the same condition from expat, so both
  forms of the mistake read alike.
- Text directly under the stream element must be whitespace (§11.7); other
  text is ``invalid-xml`` (§4.9.3.9): it is well-formed, but the streams schema
  (Appendix A.1) gives the stream element element-only content.
- Limits are ``policy-violation`` (§4.9.3.14) naming the limit. The byte limit
  counts every byte since the current top-level element began, or, between
  elements, the unfinished token expat holds, so a tag that never ends or a
  huge attribute value is caught while it is still arriving.
- Expat's "reparse deferral" (expat 2.6+) is off: it may hold back a complete
  stanza until more bytes arrive. The price is that expat rescans a tag that is
  still arriving on every feed: a 256 KiB tag trickled a byte at a time costs
  over a minute of CPU. ``max_tag_bytes`` (16 KiB; real tags are far smaller)
  caps that tag, bringing the cost per byte down to that of a packet flood. A
  complete tag that arrives in one chunk costs nothing extra and is bounded by
  ``max_stanza_bytes`` alone.
- Expat keeps every distinct element and attribute name for the parser's
  life, so a long stream of unique names would grow without bound. The expat
  parser is therefore replaced at a stanza boundary every ``RECYCLE_BYTES``,
  primed with the stream element's namespace declarations.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from twisted.words.xish import domish

from xmppd.errors import StreamError

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_XMPP_ERRORS = "urn:xmpp:errors"

MAX_HEADER_BYTES = 4096  # the XML declaration and stream start tag must fit in these
RECYCLE_BYTES = 64 * 1024  # replace the expat parser after this much input

_UNBOUND_PREFIX = expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]
_QNAME = re.compile(rb"<([^\s/>]+)")
_XML_SPACE = " \t\r\n"  # XML 1.0 production S


@dataclass(frozen=True)
class Limits:
    max_stanza_bytes: int = 262_144  # bytes buffered for one top-level element (incl. unfinished)
    max_depth: int = 32  # nesting depth below the stream element
    max_elements: int = 1000  # elements in one stanza
    max_attributes: int = 64  # attributes (incl. xmlns declarations) on one element
    max_tag_bytes: int = 16_384  # bytes of a tag still incomplete when a feed ends


@dataclass(frozen=True)
class StreamHeader:
    attrs: dict[str, str]  # to, from, id, version; xml:lang under "xml:lang"
    prefix: str | None  # the prefix used on the stream element
    ns: str  # the stream element's namespace
    default_ns: str | None  # the content namespace declared with xmlns=


class _ClosedError(Exception):
    """Unwinds expat when a callback closed the parser."""


def _policy(limit: str, value: int) -> StreamError:
    # §4.9.3.14; XEP-0478: the byte limit also says <stanza-too-big/>.
    app = None
    if limit in ("max_stanza_bytes", "max_tag_bytes"):
        app = domish.Element((NS_XMPP_ERRORS, "stanza-too-big"))
    return StreamError("policy-violation", text=f"{limit} ({value}) exceeded", appCondition=app)


def _bad_utf8(data: bytes) -> bool:
    """Whether ``data`` starts with a byte sequence that is not UTF-8."""
    try:
        codecs.utf_8_decode(data, "strict", False)
    except UnicodeDecodeError as e:
        return e.start == 0
    return False


class StreamParser:
    """Parses one XML stream; see the module docstring for the rules.

    ``feed`` raises ``StreamError`` on a violation and lets exceptions from the
    callbacks through unchanged; after either, and after ``close()``, further
    ``feed`` calls and pending callbacks are no-ops.
    """

    def __init__(
        self,
        on_header: Callable[[StreamHeader], None],
        on_element: Callable[[domish.Element], None],
        on_end: Callable[[], None],
        limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
        content_ns: str = "jabber:client",
    ) -> None:
        self._on_header = on_header
        self._on_element = on_element
        self._on_end = on_end
        self.limits = limits
        self._content_ns = content_ns
        self._closed = False
        self._header: StreamHeader | None = None
        self._head = b""  # bytes before the header completes (to read its prefix)
        self._prime = b""  # replays the stream element's namespace context
        self._fed = 0  # bytes fed so far: the absolute index of the next byte
        self._base = 0  # absolute index of the current expat parser's byte 0
        self._recycle_at = RECYCLE_BYTES
        self._slice: Any = b""  # what expat is parsing now, from absolute index _slice_at
        self._slice_at = 0
        self._tail = b""  # the last 4 bytes fed before _slice, for error reports
        self._depth = 0  # open elements, the stream element included
        self._cur: domish.Element | None = None  # innermost open element of a stanza
        self._text: list[str] = []  # character data not yet added to _cur
        self._count = 0  # elements in the current stanza
        self._stanza_start = -1  # absolute index of the current stanza's "<", or -1
        self._decls = 0  # namespace declarations on the element being opened
        self._default_decl: str | None = None
        self._prefix_decls: dict[str, str] | None = None
        self._stream_default = ""
        self._parser: Any = self._new_expat()
        self._install(self._parser)

    # -- public --------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self._max_bytes = limits.max_stanza_bytes
        self._max_depth = limits.max_depth
        self._max_elements = limits.max_elements
        self._max_attributes = limits.max_attributes
        self._max_tag = limits.max_tag_bytes

    def feed(self, data: bytes) -> None:
        if self._closed or not data:
            return
        try:
            rest: Any = data if self._header is not None else self._feed_header(data)
            step = self._max_bytes
            if len(rest) <= step:
                if rest:
                    self._parse(rest)
            else:
                # Big chunks go in slices so the byte limit is checked as we go.
                view = memoryview(rest)
                for i in range(0, len(rest), step):
                    self._parse(view[i : i + step])
        except _ClosedError:
            return
        except expat.ExpatError as e:
            error = self._expat_error(e)
            self.close()
            raise error from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop: later ``feed`` calls and pending callbacks do nothing. Bytes
        after the current element in the chunk being fed are discarded
        (STARTTLS, RFC 6120 §5.3.3)."""
        self._closed = True
        self._cur = None
        self._text = []
        self._slice = self._head = b""
        self._parser = None  # breaks the parser <-> handler cycle

    # -- feeding -------------------------------------------------------------

    def _feed_header(self, data: bytes) -> Any:
        """Feed the first bytes, up to MAX_HEADER_BYTES; return the rest."""
        room = MAX_HEADER_BYTES - self._fed
        head = data[:room]
        self._head += head
        start = self._head[:2]
        if start[:1] in (b"\xfe", b"\xff") or b"\x00" in start:
            # §11.6: expat honours a UTF-16 byte order mark, or the UTF-16 form
            # of "<", over the UTF-8 we force on it.
            raise StreamError("unsupported-encoding", text="only UTF-8 is supported")
        self._parse(head)
        if self._header is None and self._fed >= MAX_HEADER_BYTES:
            text = f"MAX_HEADER_BYTES ({MAX_HEADER_BYTES}) exceeded"
            raise StreamError("policy-violation", text=text)  # §4.9.3.14
        return memoryview(data)[room:] if len(data) > room else b""

    def _parse(self, data: Any) -> None:
        self._slice = data
        self._slice_at = self._fed
        self._fed += len(data)
        parser = self._parser
        parser.Parse(data, False)
        # Expat consumes text as it comes; what it still holds is one unfinished token.
        held = self._fed - self._base - max(parser.CurrentByteIndex, 0)
        if held > self._max_tag:
            raise _policy("max_tag_bytes", self._max_tag)
        start = self._stanza_start
        if (held if start < 0 else self._fed - start) > self._max_bytes:
            raise _policy("max_stanza_bytes", self._max_bytes)
        if self._fed >= self._recycle_at and self._cur is None and self._depth == 1:
            self._recycle(data, held)
        if len(data) >= 4:
            self._tail = bytes(data[-4:])
        else:
            self._tail = (self._tail + bytes(data))[-4:]
        self._slice = b""  # only errors need it; never keep the caller's chunk

    def _recycle(self, data: Any, keep: int) -> None:
        """Swap in a fresh expat parser between stanzas, carrying over the
        ``keep`` bytes of an unfinished token (if they are all in ``data``)."""
        if keep > len(data):
            return
        parser = self._new_expat()
        parser.Parse(self._prime, False)  # trusted bytes, before any handler
        self._install(parser)
        self._parser = parser
        self._base = self._fed - keep - len(self._prime)
        self._recycle_at = self._fed + RECYCLE_BYTES
        if keep:
            self._slice, self._slice_at = data, self._fed - len(data)
            parser.Parse(data[len(data) - keep :], False)

    def _new_expat(self) -> Any:
        parser = expat.ParserCreate("UTF-8", " ")  # §11.6: UTF-8 only, declared or not
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.UseForeignDTD(False)
        if hasattr(parser, "SetReparseDeferralEnabled"):  # expat 2.6+
            parser.SetReparseDeferralEnabled(False)
        parser.buffer_text = True  # one text callback per run, not per line or entity
        return parser

    def _install(self, parser: Any) -> None:
        parser.XmlDeclHandler = self._xml_decl
        # §11.1: no DTD, entity declarations, comments or PIs, anywhere.
        parser.StartDoctypeDeclHandler = self._restricted
        parser.EntityDeclHandler = self._restricted
        parser.UnparsedEntityDeclHandler = self._restricted
        parser.NotationDeclHandler = self._restricted
        parser.ExternalEntityRefHandler = self._restricted
        parser.SkippedEntityHandler = self._restricted
        parser.CommentHandler = self._restricted
        parser.ProcessingInstructionHandler = self._restricted
        parser.StartNamespaceDeclHandler = self._ns_decl
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars

    def _expat_error(self, e: expat.ExpatError) -> StreamError:
        text = expat.errors.messages[e.code]
        if e.code == _UNBOUND_PREFIX and self._header is None:
            # §4.9.3.2: its example is exactly <foo:stream xmlns:stream=...>.
            return StreamError("bad-namespace-prefix", text=text)
        window = self._tail + bytes(self._slice)
        at = self._base + self._parser.ErrorByteIndex - (self._slice_at - len(self._tail))
        if 0 <= at < len(window):
            if _bad_utf8(window[at : at + 4]):
                return StreamError("unsupported-encoding", text=text)  # §11.6
            if window[max(at - 2, 0) : at + 2].find(b"<!") >= 0:
                # A DOCTYPE or ENTITY inside the stream: §11.1, not just syntax.
                return StreamError("restricted-xml", text="no DTD or entity declarations")
        return StreamError("not-well-formed", text=text)  # §4.9.3.13

    # -- expat handlers --------------------------------------------------------

    def _xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.upper() != "UTF-8":
            raise StreamError("unsupported-encoding", text=f"encoding {encoding!r}")  # §11.6

    def _restricted(self, *args: object) -> None:
        raise StreamError("restricted-xml")  # §4.9.3.18, §11.1

    def _ns_decl(self, prefix: str | None, uri: str | None) -> None:
        self._decls += 1
        if self._decls > self._max_attributes:
            raise _policy("max_attributes", self._max_attributes)
        if uri is None:
            uri = ""  # xmlns='' undeclares the default namespace
        elif " " in uri:
            # Names reach us as "uri local": a space in a URI would make them ambiguous.
            raise StreamError("invalid-namespace", text="space in a namespace name")
        if prefix is None:
            self._default_decl = uri
        elif self._prefix_decls is None:
            self._prefix_decls = {prefix: uri}
        else:
            self._prefix_decls[prefix] = uri

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        depth = self._depth
        if depth == 0:
            self._start_stream(name, attrs)
            return
        if depth > self._max_depth:
            raise _policy("max_depth", self._max_depth)
        decls = self._decls
        if decls:  # _ns_decl saw xmlns attributes on this element
            self._decls = 0
            default = self._default_decl
            prefixes = self._prefix_decls
            self._default_decl = self._prefix_decls = None
        else:
            default = prefixes = None
        if attrs:
            if len(attrs) + decls > self._max_attributes:
                raise _policy("max_attributes", self._max_attributes)
            if " " in "".join(attrs):
                attrs = _qualify(attrs)
        uri, _, local = name.rpartition(" ")
        cur = self._cur
        if cur is None:  # a top-level element
            if local == "stream" and uri == NS_STREAMS:
                # A second header without a restart: see the module docstring.
                raise StreamError("not-well-formed", text="stream header inside the stream")
            self._count = 1
            self._stanza_start = self._base + self._parser.CurrentByteIndex
            el = domish.Element(
                (uri, local), self._stream_default if default is None else default, attrs, prefixes
            )
        else:
            self._count += 1
            if self._count > self._max_elements:
                raise _policy("max_elements", self._max_elements)
            if self._text:
                cur.children.append("".join(self._text))
                self._text.clear()
            el = domish.Element(
                (uri, local), cur.defaultUri if default is None else default, attrs, prefixes
            )
            el.parent = cur
            cur.children.append(el)
        self._cur = el
        self._depth = depth + 1

    def _start_stream(self, name: str, attrs: dict[str, str]) -> None:
        at = self._parser.CurrentByteIndex
        match = _QNAME.match(self._head, at)
        qname = match.group(1).decode("utf-8", "replace") if match else ""
        prefix = qname.rpartition(":")[0] or None
        uri, _, local = name.rpartition(" ")
        if uri != NS_STREAMS or local != "stream":
            raise StreamError("invalid-namespace", text="not a stream element")  # §4.9.3.10
        if prefix != "stream":
            # §4.8.1: "for historical reasons MAY accept only the 'stream:' prefix".
            raise StreamError("bad-namespace-prefix", text="the prefix must be 'stream'")
        default = self._default_decl
        if default != self._content_ns:
            raise StreamError("invalid-namespace", text=f"content namespace {default!r}")
        if len(attrs) + self._decls > self._max_attributes:
            raise _policy("max_attributes", self._max_attributes)
        header_attrs = {}
        for key, value in attrs.items():
            if " " in key:
                ns, _, attr = key.rpartition(" ")
                key = f"xml:{attr}" if ns == NS_XML else f"{{{ns}}}{attr}"
            header_attrs[key] = value
        decls = self._prefix_decls or {}
        self._prime = (
            f"<{qname} xmlns={quoteattr(default)}"
            + "".join(f" xmlns:{p}={quoteattr(u)}" for p, u in decls.items())
            + ">"
        ).encode("utf-8")
        self._decls, self._default_decl, self._prefix_decls = 0, None, None
        self._stream_default = default
        self._head = b""
        self._depth = 1
        self._header = StreamHeader(header_attrs, prefix, uri, default)
        self._on_header(self._header)
        if self._closed:
            raise _ClosedError

    def _end(self, name: str) -> None:
        depth = self._depth - 1
        self._depth = depth
        el = self._cur
        if el is None:  # </stream:stream>
            self._on_end()
            if self._closed:
                raise _ClosedError
            return
        if self._text:
            el.children.append("".join(self._text))
            self._text.clear()
        if depth > 1:
            self._cur = el.parent
            return
        self._cur = None
        size = self._base + self._parser.CurrentByteIndex - self._stanza_start
        self._stanza_start = -1
        if size > self._max_bytes:
            raise _policy("max_stanza_bytes", self._max_bytes)
        self._on_element(el)
        if self._closed:
            raise _ClosedError

    def _chars(self, data: str) -> None:
        if self._cur is not None:
            self._text.append(data)
        elif data.strip(_XML_SPACE):
            # §11.7 allows whitespace between top-level elements, nothing else.
            raise StreamError("invalid-xml", text="text outside a stanza")


def _qualify(attrs: dict[str, str]) -> dict[Any, str]:
    """expat's "uri local" attribute names as domish's (uri, local) keys."""
    out: dict[Any, str] = {}
    for key, value in attrs.items():
        if " " in key:
            ns, _, local = key.rpartition(" ")
            out[(ns, local)] = value
        else:
            out[key] = value
    return out
