"""Step 2: a client-credentials token from the advertised token URL, as the app asks for it."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from tools.conformance.client import CallFailed, is_loopback
from tools.conformance.context import Context, Step
from tools.conformance.report import RECOMMENDED, REQUIRED, Spec

SPECS: Final = [
    Spec(
        "token.request",
        "POST the token URL with grant_type=client_credentials, client_id, client_secret and "
        "scope=<tenant> in the form body answers 200 JSON",
        REQUIRED,
    ),
    Spec("token.access_token", "the token answer has access_token", REQUIRED),
    Spec("token.token_type", "token_type is bearer (any case)", REQUIRED),
    Spec("token.expires_in", "expires_in is a number", REQUIRED),
    Spec("token.no_store", "the token answer carries Cache-Control: no-store", RECOMMENDED),
]
NO_CREDENTIALS: Final = (
    "no client credentials: give --client-id and --client-secret (or EHRB_CHECK_CLIENT_ID and "
    "EHRB_CHECK_CLIENT_SECRET), or --no-auth for an open server"
)


def _inapplicable(ctx: Context) -> str | None:
    return "--no-auth: no token is requested" if ctx.options.no_auth else None


def _blocked(ctx: Context) -> str | None:
    if ctx.statement is None:
        return "no metadata"
    if ctx.token_url is None:
        return "no token URL in the metadata (see metadata.oauth_uris)"
    return None


def _run(ctx: Context) -> None:
    report, options = ctx.report, ctx.options
    token_url = ctx.token_url
    assert token_url is not None  # _blocked saw to it
    if not options.client_id or not options.client_secret:
        report.failed("token.request", NO_CREDENTIALS)
        report.skip_pending("no token request")
        return
    if urlsplit(token_url).scheme != "https" and not is_loopback(token_url) and options.verify:
        report.failed(
            "token.request",
            f"refused to send the client secret over plain HTTP to {urlsplit(token_url).netloc} "
            "(--insecure allows it for a test server)",
        )
        report.skip_pending("no token request")
        return
    fields = {
        "grant_type": "client_credentials",
        "client_id": options.client_id,
        "client_secret": options.client_secret,
    }
    if options.tenant:
        fields["scope"] = options.tenant
    try:
        answer = ctx.client.post_token(token_url, fields)
        document = answer.json() if answer.status == 200 else None
    except CallFailed as failure:
        report.failed("token.request", failure.evidence)
        report.skip_pending("no token answer")
        return
    if document is None:
        report.failed("token.request", f"{answer.describe()}, {answer.took}")
        report.skip_pending("no token answer")
        return
    report.passed("token.request", f"HTTP 200 JSON, {answer.took}")
    token = document.get("access_token")
    report.hide(token if isinstance(token, str) else None)
    if isinstance(token, str) and token:
        ctx.client.token = token
        ctx.authorized = True
        report.passed("token.access_token", f"access_token present ({len(token)} characters)")
    else:
        report.failed("token.access_token", "access_token missing or not a string")
    token_type = document.get("token_type")
    if isinstance(token_type, str) and token_type.lower() == "bearer":
        report.passed("token.token_type", f"token_type {token_type}")
    elif token_type is None:
        report.failed("token.token_type", "token_type missing")
    else:
        shown = token_type[:20] if isinstance(token_type, str) else _json_type(token_type)
        report.failed("token.token_type", f"token_type {shown!r}")
    expires_in = document.get("expires_in")
    number = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if number:
        report.passed("token.expires_in", f"expires_in {expires_in}")
    elif expires_in is None:
        report.failed("token.expires_in", "expires_in missing")
    else:
        report.failed("token.expires_in", f"expires_in is a JSON {_json_type(expires_in)}")
    cache = answer.headers.get("Cache-Control") or ""
    directives = [d.strip().lower() for d in cache.split(",")]
    report.verdict(
        "token.no_store",
        "no-store" in directives,
        f"Cache-Control: {cache}" if cache else "no Cache-Control header",
    )


def _json_type(value: object) -> str:
    return {bool: "boolean", str: "string", list: "array", dict: "object"}.get(type(value), "value")


STEP: Final = Step("token", lambda _: list(SPECS), _run, _blocked, _inapplicable)
