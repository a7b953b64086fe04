"""TLS for client streams: STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368).

TLS 1.2 or newer only (RFC 7590), renegotiation refused (Prosody
CVE-2021-32920), no compression. Without a configured certificate a
self-signed one is made under ``var/tls/`` for development, with a warning.
"""

from __future__ import annotations

import datetime
import os

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.logger import Logger

log = Logger()


def self_signed(domain: str, directory: str) -> tuple[str, str]:
    """Create (once) a self-signed certificate for ``domain``; return its paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path = os.path.join(directory, f"{domain}.crt")
    key_path = os.path.join(directory, f"{domain}.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(domain), x509.DNSName(f"*.{domain}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def context_factory(cert_path: str, key_path: str) -> ssl.CertificateOptions:
    """Server TLS options from PEM files (the first certificate is the leaf)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    # pyOpenSSL takes cryptography objects directly (its own X509/PKey are deprecated).
    with open(cert_path, "rb") as f:
        chain = x509.load_pem_x509_certificates(f.read())
    with open(key_path, "rb") as f:
        key = load_pem_private_key(f.read(), None)
    options = ssl.CertificateOptions(
        privateKey=key,
        certificate=chain[0],
        extraCertChain=chain[1:],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        enableSessions=False,
    )
    ctx = options.getContext()
    ctx.set_options(getattr(SSL, "OP_NO_RENEGOTIATION", 0) | SSL.OP_NO_COMPRESSION)
    return options


def server_tls(domain: str, cert: str, key: str, var_dir: str) -> ssl.CertificateOptions:
    if not cert:
        cert, key = self_signed(domain, os.path.join(var_dir, "tls"))
        log.warn(
            "tls.cert is not set: using a self-signed development certificate {cert}; "
            "clients will not trust it. Set tls.cert and tls.key for production.",
            cert=cert,
        )
    return context_factory(cert, key)
