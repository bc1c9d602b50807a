"""Replace the provider's base URL with the face's in bodies and headers, fast.

Runs on every proxied response, so it works on bytes and never parses JSON: every string value
that carries the base (Bundle.link[].url, entry[].fullUrl, entry[].response.location,
references, nested Bundles of a batch-response) is rewritten because it is text in the body.

What counts as the provider base:

- scheme ``http`` or ``https`` and the host, case-insensitively; the path, case-sensitively;
- the default port written or not (``https://p:443/fhir`` is ``https://p/fhir``);
- plain or JSON-escaped slashes (``https:\\/\\/p\\/fhir``);
- only at a boundary: followed by ``/``, ``?``, ``#``, a quote, ``<``, ``>``, white space, an
  escaped slash or quote, or the end. So base ``https://p/fhir`` leaves ``https://p/fhir2/x``
  alone.

Anything else that names the provider host (another path on the same host, a different port,
the host in a query parameter) is left as it is; ``leaks`` reports it so the caller decides.

Speed: a case-insensitive regex defeats ``re``'s literal-prefix scan and costs ~25 ns a byte.
Instead the body is lower-cased once (ASCII only, a few µs for a 12 KB searchset) and scanned
with one case-sensitive precompiled regex; at each hit the port and the path's original case
are checked. About 50 µs for a 12 KB, 20-entry searchset with 42 URLs to rewrite, and
``leaks`` about 8 µs on the result (2-core CI machine).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Ends a URL's path: query, fragment, quotes, angle brackets, white space, JSON escapes of "/"
# and '"', or the end of the text. Not ",", ";", ")" and the like: they may continue a path.
_BOUNDARY = rb"""(?=[/?#"'<>\s]|\\[/"]|\Z)"""
_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")
# A percent-escape right before the host (``%2F`` of an encoded URL) ends the name before it.
_PERCENT_ESCAPE = re.compile(rb"%[0-9a-f]{2}\Z")


class UrlRewriter:
    """Rewrites one provider base to one face base.

    ``provider_base`` is the tenant's provider URL; ``face_base`` the public URL of the face the
    caller used, e.g. ``https://bridge.example.com/api/fhir/stu3``.
    """

    def __init__(self, provider_base: str, face_base: str) -> None:
        provider = urlsplit(provider_base.strip())
        scheme = provider.scheme.lower()
        host = (provider.hostname or "").lower()
        if scheme not in _DEFAULT_PORTS or not host or not provider_base.isascii():
            raise ValueError("provider base must be an absolute http(s) URL")
        face = face_base.rstrip("/")
        if (
            not face.startswith(("https://", "http://"))
            or not face.isascii()
            or re.search(r"[\"\\\s<>]", face)
        ):
            raise ValueError("face base must be an absolute ASCII http(s) URL without quotes")
        try:
            port = provider.port
        except ValueError:
            raise ValueError("provider base has an invalid port") from None

        self._face = face.encode("ascii")
        self._host = (f"[{host}]" if ":" in host else host).encode("ascii")
        path = provider.path.rstrip("/").encode("ascii")
        slash = rb"(?:/|\\/)"
        # Scheme, host and path are found in the lower-cased text, so that ``re`` can use its
        # literal-prefix scan; the path's case and the port are then checked on the match.
        self._candidates = re.compile(
            rb"(?P<scheme>https?):"
            + slash * 2
            + re.escape(self._host)
            + rb"(?P<port>:[0-9]{1,5})?(?P<path>"
            + re.escape(path.lower()).replace(b"/", slash)
            + rb")"
            + _BOUNDARY
        )
        self._path = re.compile(re.escape(path).replace(b"/", slash))
        if port is None or port == _DEFAULT_PORTS[scheme]:
            self._ports = {
                b"https": frozenset((None, b":443")),
                b"http": frozenset((None, b":80")),
            }
        else:
            explicit = frozenset((b":" + str(port).encode("ascii"),))
            self._ports = {b"https": explicit, b"http": explicit}
        self._face_shares_host = self._host in self._face.lower()

    def body(self, body: bytes) -> bytes:
        """``body`` with every provider base at a boundary replaced by the face base."""
        lower = body.lower()
        if self._host not in lower:
            return body
        pieces: list[bytes] = []
        copied = 0
        for match in self._candidates.finditer(lower):
            if match["port"] not in self._ports[match["scheme"]]:
                continue
            if not self._path.fullmatch(body, match.start("path"), match.end("path")):
                continue
            pieces.append(body[copied : match.start()])
            pieces.append(self._face)
            copied = match.end()
        if not pieces:
            return body
        pieces.append(body[copied:])
        return b"".join(pieces)

    def header(self, value: str) -> str:
        """A Location, Content-Location or Link value with the provider base replaced.

        A Link header carrying several ``<url>; rel=…`` items gets each one rewritten.
        """
        raw = value.encode("utf-8", "surrogateescape")
        return self.body(raw).decode("utf-8", "surrogateescape")

    def leaks(self, body: bytes) -> bool:
        """True if the provider host still appears anywhere in ``body`` as a whole host name.

        "Whole" means not part of a longer name (``p.example.org`` does not leak through
        ``bridge.p.example.org`` or ``p.example.org2``); a percent-escape before it (an encoded
        URL in a query parameter) does not make it part of a longer name. Occurrences inside
        the face base itself (local development, where provider and face share ``127.0.0.1``)
        do not count.
        """
        lower = body.lower()
        if self._face_shares_host:
            lower = lower.replace(self._face.lower(), b"")
        host, host_len = self._host, len(self._host)
        at = lower.find(host)
        while at >= 0:
            before = lower[at - 1] if at > 0 else None
            after_at = at + host_len
            after = lower[after_at] if after_at < len(lower) else None
            inside_before = (
                before is not None
                and (before in _HOST_CHARS or before == ord("."))
                and not _PERCENT_ESCAPE.match(lower, max(at - 3, 0), at)
            )
            inside_after = after is not None and after in _HOST_CHARS
            if not inside_before and not inside_after:
                return True
            at = lower.find(host, at + 1)
        return False
