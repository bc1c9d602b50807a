"""A JWK Set (RFC 7517) read into the public keys EHR Bridge would verify a signature with.

Only asymmetric public keys are kept: RSA of at least 2048 bits and EC on P-256 or P-384, in
"bare key" form (RSA ``n``/``e``, EC ``crv``/``x``/``y``: SMART's rule for registered keys).
A key is left out when it carries private members (RFC 7517 §4, RFC 7518 §6.2.2, §6.3.2: an
issuer that publishes them is broken, and we never hold a private key of someone else), when
it is symmetric (``oct``: RFC 8725 §2.1, an HMAC "verified" with public material), when its
``use`` is not ``sig`` or its ``key_ops`` do not include ``verify`` (RFC 7517 §4.2, §4.3), or
when its ``kid`` is missing. Two keys with one ``kid`` are both left out: SMART says the
verification fails when more than one key matches, and picking one would let the order of a
document decide. Leaving a key out never fails the whole set; a document that is no JWK Set
does (``InvalidKeySet``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MIN_RSA_BITS = 2048
MAX_KEYS = 100
MAX_KID_LENGTH = 128

# The JWS algorithm → the key type it needs and, for EC, the curve (RFC 7518 §3.1).
ALGORITHMS: Final[Mapping[str, tuple[str, str | None]]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
}
_CURVE_BYTES: Final = {"P-256": 32, "P-384": 48}
# Members that only a private (or symmetric) key carries (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class InvalidKeySet(ValueError):
    """A document that is not a JWK Set (no ``keys`` array, or too many keys)."""


@dataclass(frozen=True)
class PublicKey:
    """One public key of a set: its ``kid``, type, curve, declared ``alg`` and key object."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    """The JWK's own ``alg`` member, if any: the key is then usable with that algorithm only."""
    key: Any
    """The ``cryptography`` public key object, what pyjwt verifies with."""
    issuer: str | None = None
    """Entra ID's (non-standard) ``issuer`` member, which scopes the key to an issuer."""

    def usable_with(self, algorithm: str) -> bool:
        """True when a signature made with ``algorithm`` may be checked with this key."""
        wanted = ALGORITHMS.get(algorithm)
        if wanted is None:
            return False
        kty, crv = wanted
        if self.kty != kty or (crv is not None and self.crv != crv):
            return False
        return self.alg is None or self.alg == algorithm


@dataclass(frozen=True)
class KeySet:
    """The usable keys of one JWK Set, by ``kid``."""

    keys: Mapping[str, PublicKey]
    skipped: int = 0
    """Keys of the document that were left out (see the module docstring)."""

    def get(self, kid: str) -> PublicKey | None:
        """The key named ``kid``, or None."""
        return self.keys.get(kid)


def parse_key_set(document: object) -> KeySet:
    """The usable public keys of a JWK Set document; InvalidKeySet when it is none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidKeySet("the document is not a JWK Set (no keys array)")
    entries = document["keys"]
    if len(entries) > MAX_KEYS:
        raise InvalidKeySet(f"the JWK Set holds more than {MAX_KEYS} keys")
    found: dict[str, PublicKey] = {}
    ambiguous: set[str] = set()
    skipped = 0
    for entry in entries:
        key = _public_key(entry)
        if key is None:
            skipped += 1
        elif key.kid in found or key.kid in ambiguous:
            ambiguous.add(key.kid)
        else:
            found[key.kid] = key
    for kid in ambiguous:
        found.pop(kid, None)
        skipped += 2
    return KeySet(found, skipped)


def _public_key(entry: object) -> PublicKey | None:
    """One JWK as a public key we would verify with, or None (see the module docstring)."""
    if not isinstance(entry, dict) or _PRIVATE_MEMBERS & entry.keys():
        return None
    kid, kty, alg = entry.get("kid"), entry.get("kty"), entry.get("alg")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH or not kid.isprintable():
        return None
    if entry.get("use", "sig") != "sig":
        return None
    operations = entry.get("key_ops")
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        return None
    if alg is not None and alg not in ALGORITHMS:
        return None
    issuer = entry.get("issuer")
    issuer = issuer if isinstance(issuer, str) else None
    try:
        if kty == "RSA":
            return PublicKey(kid, "RSA", None, alg, _rsa(entry), issuer)
        if kty == "EC":
            curve = entry.get("crv")
            if curve not in _CURVE_BYTES:
                return None
            return PublicKey(kid, "EC", curve, alg, _ec(entry, curve), issuer)
    except ValueError:
        return None
    return None


def _integer(value: object, length: int | None = None) -> int:
    """A base64url unsigned integer (RFC 7518 §2 Base64urlUInt); ValueError when malformed."""
    if not isinstance(value, str) or _BASE64URL.fullmatch(value) is None:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if length is not None and len(raw) != length:
        raise ValueError("wrong coordinate length")
    return int.from_bytes(raw, "big")


def _rsa(entry: Mapping[str, object]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    modulus, exponent = _integer(entry.get("n")), _integer(entry.get("e"))
    if modulus.bit_length() < MIN_RSA_BITS:
        raise ValueError("RSA key shorter than 2048 bits")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _ec(entry: Mapping[str, object], curve_name: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    size = _CURVE_BYTES[curve_name]
    curve = ec.SECP256R1() if curve_name == "P-256" else ec.SECP384R1()
    x, y = _integer(entry.get("x"), size), _integer(entry.get("y"), size)
    # Raises ValueError for a point that is not on the curve.
    return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
