"""The ASGI ``tls`` scope extension: what a TLS connection's handshake settled, computed once.

`tls_extension` reads an `ssl.SSLObject` right after the handshake and returns the extension's dict
(asgiref ``specs/tls.rst``): ``server_cert`` (PEM or None), ``client_cert_chain`` (PEM strings, the
peer's certificate first), ``client_cert_name`` (RFC 4514 subject or None), ``client_cert_error``
(None: a certificate that failed verification never completes the handshake), ``tls_version`` and
``cipher_suite`` (the IANA numbers, or None when unknown).

Invariant: nothing here raises for a missing or odd certificate; absent data is None or empty.
"""

from __future__ import annotations

import ssl
from typing import Any, Final

_VERSIONS: Final = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# RFC 4514 short names for the attribute types OpenSSL reports by long name.
_SHORT: Final = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def first_pem_certificate(path: str | None) -> str | None:
    """The first certificate of a PEM file (the server's own), or None."""
    if not path:
        return None
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin:end + len(end_marker)] + "\n"


def _escape_rdn(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch in " #" and i == 0) or (ch == " " and i == len(value) - 1):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def subject_name(cert: dict[str, Any]) -> str | None:
    """RFC 4514 string of a decoded certificate's subject (most specific RDN first)."""
    subject = cert.get("subject")
    if not subject:
        return None
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape_rdn(str(v))}" for k, v in rdn))
    return ",".join(rdns)


def _cipher_ids(ctx: ssl.SSLContext | None) -> dict[str, int]:
    if ctx is None:
        return {}
    return {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}


_cipher_cache: dict[int, dict[str, int]] = {}


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_cert: str | None
                  ) -> dict[str, Any]:
    """The ``tls`` extension dict for one connection."""
    chain: list[str] = []
    name: str | None = None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        der = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            decoded = ssl_object.getpeercert()
        except (ValueError, ssl.SSLError):
            decoded = None
        if decoded:
            name = subject_name(decoded)
    cipher = ssl_object.cipher()
    ctx = ssl_object.context
    ids = _cipher_cache.get(id(ctx))
    if ids is None:
        ids = _cipher_cache[id(ctx)] = _cipher_ids(ctx)
    version = ssl_object.version()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(version) if version else None,
        "cipher_suite": ids.get(cipher[0]) if cipher else None,
    }


__all__ = ["first_pem_certificate", "subject_name", "tls_extension"]
