"""xmppd.stanza helpers."""

from tests.harness import parse
from xmppd.stanza import clone


def test_clone_is_deep_and_serialises_the_same():
    """A clone serialises like the original; changing it leaves the original alone."""
    original = parse(
        "<message to='a@b' type='chat' xml:lang='en'><body>hi &amp; bye</body>"
        "<x xmlns='urn:example'><y z='1'>t</y></x></message>"
    )
    copy = clone(original)
    assert copy.toXml() == original.toXml()
    copy["to"] = "c@d"
    next(copy.elements("urn:example", "x")).firstChildElement()["z"] = "2"
    assert original["to"] == "a@b"
    assert "z='1'" in original.toXml()
    assert all(child.parent is copy for child in copy.elements())
