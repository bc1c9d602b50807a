"""Our signing keys held in a Key Vault secret, and their JWKS.

Each version of the secret is one key (a PEM private key, tagged with its ``alg``); the version
id is the JWT ``kid``. The newest usable version signs. Versions with a future ``not_before``
are published in the JWKS before they sign, and the previous key is kept (until the expiry set
at rotation) so that tokens it signed verify until they expire (RFC 8725 §3.10 key rollover).

Two secrets hold such keys, one per kind of JWT we sign (RFC 8725 §3.12: different kinds,
different keys): ``token-signing-key`` for our access tokens (RS256 or ES256) and
``assertion-signing-key`` for the client assertions we present to providers (RS384 or ES384,
SMART Backend Services' pair).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.cache import TTLCache
from shared.ids import SIGNING_KEY_NAME
from shared.secret_store import SecretDisabled, SecretNotFound, SecretStore, SecretVersion, utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class NoSigningKey(Exception):
    """No usable signing key with the configured algorithm."""


@dataclass(frozen=True)
class SigningKey:
    """One signing key: its ``kid``, algorithm and loaded private key."""

    kid: str
    algorithm: str
    private_key: Any
    properties: SecretVersion

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 7517) with ``kid``, ``alg`` and ``use``."""
        return public_jwk(self.private_key, self.kid, self.algorithm)


# cryptography's curve name → the JWK crv and the coordinate size (RFC 7518 §6.2.1).
_CURVES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48)}


def _b64(number: int, length: int | None = None) -> str:
    size = length or (number.bit_length() + 7) // 8
    return base64.urlsafe_b64encode(number.to_bytes(size, "big")).rstrip(b"=").decode("ascii")


def public_jwk(private_key: Any, kid: str, algorithm: str) -> dict[str, str]:
    """JWK of the public key of ``private_key``."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            "kty": "RSA",
            "kid": kid,
            "alg": algorithm,
            "use": "sig",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        crv, size = _CURVES[public.curve.name]
        return {
            "kty": "EC",
            "kid": kid,
            "alg": algorithm,
            "use": "sig",
            "crv": crv,
            "x": _b64(point.x, size),
            "y": _b64(point.y, size),
        }
    raise NoSigningKey("unsupported key type")


def generate_private_key_pem(algorithm: str) -> str:
    """A new PKCS#8 PEM private key: RSA 2048 for RS256/RS384, P-256 for ES256, P-384 for ES384."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key: PrivateKeyTypes
    if algorithm in ("RS256", "RS384"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        raise ValueError("algorithm must be RS256, ES256, RS384 or ES384")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def rotate_signing_key(
    store: SecretStore,
    algorithm: str,
    *,
    activate_in: timedelta = timedelta(0),
    retire_previous_after: timedelta | None = None,
    secret_name: str = SIGNING_KEY_NAME,
) -> SecretVersion:
    """Add a signing key; it signs after ``activate_in``; older keys expire later.

    ``retire_previous_after`` should be at least token lifetime + clock skew + cache TTL past
    activation, so every token the old key signed still verifies until it expires.
    """
    now = utcnow()
    not_before = now + activate_in if activate_in > timedelta(0) else None
    older = [v for v in store.list_versions(secret_name) if v.is_usable(now)]
    version = store.set_secret(
        secret_name,
        generate_private_key_pem(algorithm),
        not_before=not_before,
        tags={"alg": algorithm},
    )
    if retire_previous_after is not None:
        retire_at = now + activate_in + retire_previous_after
        for old in older:
            if old.expires_on is None or old.expires_on > retire_at:
                store.update_version(secret_name, old.version, expires_on=retire_at)
    return version


class SigningKeys:
    """Loads signing keys from the secret ``secret_name``, cached for ``ttl`` seconds."""

    def __init__(
        self,
        store: SecretStore,
        algorithm: str,
        ttl: float,
        *,
        secret_name: str = SIGNING_KEY_NAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._algorithm = algorithm
        self._name = secret_name
        self._versions: TTLCache[list[SecretVersion]] = TTLCache(ttl, clock=clock)
        # A PEM parse costs milliseconds; a version's key never changes, so keep it.
        self._loaded: dict[str, SigningKey] = {}

    @property
    def algorithm(self) -> str:
        """The one algorithm these keys sign and verify with."""
        return self._algorithm

    def _list(self) -> list[SecretVersion]:
        return self._versions.get("versions", lambda: self._store.list_versions(self._name))

    def _load(self, props: SecretVersion) -> SigningKey | None:
        cached = self._loaded.get(props.version)
        if cached is not None:
            return cached
        from cryptography.hazmat.primitives import serialization

        try:
            secret = self._store.get_secret(self._name, props.version)
        except (SecretDisabled, SecretNotFound):
            return None
        key = serialization.load_pem_private_key(secret.value.encode("ascii"), password=None)
        loaded = SigningKey(props.version, props.tags.get("alg", ""), key, props)
        self._loaded[props.version] = loaded
        return loaded

    def _matching(self, props: SecretVersion) -> bool:
        return props.enabled and props.tags.get("alg") == self._algorithm

    def current(self, now: datetime | None = None) -> SigningKey:
        """The key that signs now: the newest usable one with the configured algorithm."""
        moment = now or utcnow()
        for props in self._list():
            if self._matching(props) and props.is_usable(moment):
                key = self._load(props)
                if key is not None:
                    return key
        raise NoSigningKey(f"no usable {self._algorithm} key in {self._name}")

    def published(self, now: datetime | None = None) -> list[SigningKey]:
        """Keys a verifier should accept or expect: pending, current and unexpired previous."""
        moment = now or utcnow()
        keys: list[SigningKey] = []
        for props in self._list():
            if not self._matching(props):
                continue
            if props.expires_on is not None and moment >= props.expires_on:
                continue
            key = self._load(props)
            if key is not None:
                keys.append(key)
        return keys

    def jwks(self, now: datetime | None = None) -> dict[str, list[dict[str, str]]]:
        """The JWK Set document served at ``oauth2/jwks``."""
        return {"keys": [key.public_jwk() for key in self.published(now)]}

    def refresh(self) -> None:
        """Forget the cached version list (after a rotation)."""
        self._versions.clear()

    # An unknown kid forces a re-read of the version list (a key rotated in on another instance
    # must verify at once), but at most once per interval per instance: random kids must not
    # become one Key Vault call each (docs/security.md §3, RFC 8725 §3.10).
    UNKNOWN_KID_REFRESH_SECONDS = 10.0
    _kid_refresh_lock = threading.Lock()
    _kid_refreshed_at: float | None = None

    def verification_key(self, kid: str) -> Any | None:
        """Public key of the published, unexpired key ``kid`` of our algorithm, else None."""

        def lookup() -> tuple[bool, SigningKey | None]:
            moment = utcnow()
            for props in self._list():
                if props.version != kid:
                    continue
                if not self._matching(props) or (
                    props.expires_on is not None and moment >= props.expires_on
                ):
                    return True, None
                return True, self._load(props)
            return False, None

        listed, key = lookup()
        if not listed:
            with self._kid_refresh_lock:
                now = time.monotonic()
                last = self._kid_refreshed_at
                allowed = last is None or now - last >= self.UNKNOWN_KID_REFRESH_SECONDS
                if allowed:
                    self._kid_refreshed_at = now
            if allowed:
                self.refresh()
                _, key = lookup()
        return None if key is None else key.private_key.public_key()


def ensure_signing_key(
    store: SecretStore, algorithm: str, *, secret_name: str = SIGNING_KEY_NAME
) -> SecretVersion:
    """Create a signing key when none with ``algorithm`` is usable (bootstrap)."""
    for props in store.list_versions(secret_name):
        if props.is_usable() and props.tags.get("alg") == algorithm:
            return props
    return rotate_signing_key(store, algorithm, secret_name=secret_name)
