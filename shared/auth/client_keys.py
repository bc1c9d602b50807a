"""A client's public keys for ``private_key_jwt``: a JWKS URL or an inline JWK Set, checked.

Registration is stricter than reading: :func:`shared.jose.jwk.parse_key_set` quietly leaves out
a key it would not verify with (a fetched set may hold keys for others), but a key an operator
pastes is refused with the reason, so nobody registers a set that silently cannot work. Refused:
private members (the client's private key must never leave it, and we never hold one), symmetric
``oct`` keys (an HMAC "verified" with public material, RFC 8725 §2.1), RSA shorter than 2048
bits, curves other than P-256/P-384, keys without a ``kid`` and two keys with one ``kid``.

Public keys are no secret: they live on the client's row in the ``clients`` table, as compact
JSON of at most ``MAX_INLINE_JWKS_BYTES``. A JWKS URL must be https; where it points is judged
by the address policy when it is fetched (``shared/jose/fetch.py``), as a provider URL is.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from shared.jose.jwk import ALGORITHMS, InvalidKeySet, KeySet, PublicKey, parse_key_set

if TYPE_CHECKING:
    from shared.net.addresses import AddressPolicy

MAX_INLINE_JWKS_BYTES: Final = 16 * 1024
"""Room for a few 4096-bit RSA keys (about 750 bytes each); a Table property holds 64 KiB."""
MAX_INLINE_KEYS: Final = 10
MAX_JWKS_URI_LENGTH: Final = 2048
# The token claim ``sv`` of a key-authenticated token (see key_credential).
INLINE_PREFIX: Final = "jwk."
URL_PREFIX: Final = "jku."
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class InvalidClientKeys(ValueError):
    """Keys or a JWKS URL the registry will not store; the message says why."""


class PrivateKeyRefused(InvalidClientKeys):
    """A pasted key carries private members: a form must not show it back."""


@dataclass(frozen=True)
class KeySummary:
    """What the console and the API show of one public key: never key material."""

    kid: str
    kty: str
    alg: str | None
    crv: str | None
    bits: int | None

    def to_json(self) -> dict[str, Any]:
        """The summary as the management API shows it."""
        return {
            "kid": self.kid,
            "kty": self.kty,
            "alg": self.alg,
            "crv": self.crv,
            "bits": self.bits,
        }


def validate_jwks_uri(value: object) -> str:
    """An https URL without credentials or fragment, at most 2048 characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientKeys("jwks_uri must be a non-empty string")
    url = value.strip()
    if len(url) > MAX_JWKS_URI_LENGTH or not url.isascii() or not url.isprintable():
        raise InvalidClientKeys(f"jwks_uri must be ASCII and at most {MAX_JWKS_URI_LENGTH} chars")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidClientKeys("jwks_uri is not a valid URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidClientKeys("jwks_uri must be an https URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidClientKeys("jwks_uri must not carry credentials or a fragment")
    return url


def check_jwks_uri_address(url: str, policy: AddressPolicy) -> None:
    """Refuse a JWKS URL whose host resolves, now, to an address the policy refuses.

    The policy holds again at every fetch (a name's answer can change); checking at
    registration as well tells the operator at once instead of every token request failing.
    """
    from shared.net.addresses import AddressRefused, InvalidHost

    parts = urlsplit(url)
    try:
        policy.check_resolved(parts.hostname or "", parts.port or 443)
    except InvalidHost:
        raise InvalidClientKeys("jwks_uri has a host that is no DNS name or IP address") from None
    except AddressRefused as refused:
        raise InvalidClientKeys(
            f"jwks_uri resolves to {refused.reason}, which EHR Bridge never connects to"
        ) from None


def validate_inline_jwks(value: object) -> str:
    """A JWK Set of public signing keys as compact JSON; InvalidClientKeys says what is wrong."""
    if isinstance(value, str):
        if len(value.encode("utf-8")) > MAX_INLINE_JWKS_BYTES:
            raise InvalidClientKeys(f"jwks is larger than {MAX_INLINE_JWKS_BYTES} bytes")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise InvalidClientKeys("jwks is not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise InvalidClientKeys('jwks must be a JWK Set: {"keys": [...]}')
    entries: list[Any] = value["keys"]
    if not entries:
        raise InvalidClientKeys("jwks holds no keys")
    if len(entries) > MAX_INLINE_KEYS:
        raise InvalidClientKeys(f"jwks holds more than {MAX_INLINE_KEYS} keys")
    kids: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        _check_entry(number, entry)
        kid = entry["kid"]
        if kid in kids:
            raise InvalidClientKeys(f"key {number}: kid {kid!r} is used twice")
        kids.add(kid)
    text = json.dumps({"keys": entries}, separators=(",", ":"), sort_keys=True)
    if len(text.encode("utf-8")) > MAX_INLINE_JWKS_BYTES:
        raise InvalidClientKeys(f"jwks is larger than {MAX_INLINE_JWKS_BYTES} bytes")
    return text


def _check_entry(number: int, entry: object) -> None:
    """Refuse one JWK with the reason it cannot be a client's public signing key."""
    if not isinstance(entry, dict):
        raise InvalidClientKeys(f"key {number} is not a JSON object")
    private = [member for member in _PRIVATE_MEMBERS if member in entry]
    if entry.get("kty") == "oct":
        raise InvalidClientKeys(f"key {number} is symmetric (kty oct); register a public key")
    if private:
        raise PrivateKeyRefused(
            f"key {number} carries private members ({', '.join(private)}); "
            "register the public key only"
        )
    if not isinstance(entry.get("kid"), str) or not entry["kid"]:
        raise InvalidClientKeys(f"key {number} has no kid")
    alg = entry.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        raise InvalidClientKeys(f"key {number}: alg {str(alg)[:20]!r} is not accepted")
    try:
        parsed = parse_key_set({"keys": [entry]})
    except InvalidKeySet:
        parsed = KeySet({}, 1)
    if not parsed.keys:
        raise InvalidClientKeys(
            f"key {number} is not a usable public signing key "
            "(RSA of at least 2048 bits or EC P-256/P-384, use sig, printable kid)"
        )


@functools.lru_cache(maxsize=256)
def inline_key_set(text: str) -> KeySet:
    """The parsed keys of a stored inline JWK Set (cached by its text; bounded)."""
    try:
        return parse_key_set(json.loads(text))
    except (ValueError, RecursionError):
        return KeySet({})


def summarize(key_set: KeySet) -> list[KeySummary]:
    """What may be shown of each key of a set."""
    return [_summary(key) for key in key_set.keys.values()]


def _summary(key: PublicKey) -> KeySummary:
    bits = getattr(key.key, "key_size", None)
    return KeySummary(key.kid, key.kty, key.alg, key.crv, bits if isinstance(bits, int) else None)


def _short_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def key_credential(*, jwks_uri: str = "", kid: str = "") -> str:
    """The ``sv`` claim of a key-authenticated token: which registration it rests on.

    ``jku.<digest of the URL>`` for a JWKS URL (valid while the client keeps that URL);
    ``jwk.<digest of the kid>`` for an inline key (valid while the inline set holds the kid).
    A digest, so a token never shows the URL and the claim stays short.
    """
    if jwks_uri:
        return URL_PREFIX + _short_digest(jwks_uri)
    return INLINE_PREFIX + _short_digest(kid)


def is_key_credential(sv: str) -> bool:
    """True when ``sv`` names a key registration rather than a secret version."""
    return sv.startswith((INLINE_PREFIX, URL_PREFIX))


def key_credential_current(sv: str, jwks_uri: str, inline_jwks: str) -> bool:
    """True while the client still has the registration ``sv`` names."""
    if sv.startswith(URL_PREFIX):
        return bool(jwks_uri) and key_credential(jwks_uri=jwks_uri) == sv
    if sv.startswith(INLINE_PREFIX) and inline_jwks:
        return any(key_credential(kid=kid) == sv for kid in inline_key_set(inline_jwks).keys)
    return False


def keys_json(jwks_uri: str, inline_jwks: str) -> dict[str, Any]:
    """A client's key registration as the API shows it (URL, and inline keys summarised)."""
    keys = summarize(inline_key_set(inline_jwks)) if inline_jwks else []
    return {
        "jwks_uri": jwks_uri or None,
        "jwks": [key.to_json() for key in keys],
        "token_endpoint_auth_method": "private_key_jwt" if jwks_uri or inline_jwks else None,
    }


def parse_registration(body: Mapping[str, Any]) -> tuple[str, str]:
    """``(jwks_uri, inline_jwks)`` from a request: exactly one of them, or neither to remove."""
    uri, jwks = body.get("jwks_uri"), body.get("jwks")
    if uri is not None and jwks is not None:
        raise InvalidClientKeys("send jwks_uri or jwks, not both")
    if uri is not None:
        return validate_jwks_uri(uri), ""
    if jwks is not None:
        return "", validate_inline_jwks(jwks)
    raise InvalidClientKeys("send jwks_uri (an https URL) or jwks (a JWK Set)")
