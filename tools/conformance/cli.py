"""The command line: ``python -m tools.conformance BASE_URL [options]``.

Client id, secret, tenant and patient id may come from EHRB_CHECK_CLIENT_ID,
EHRB_CHECK_CLIENT_SECRET, EHRB_CHECK_TENANT and EHRB_CHECK_PATIENT_ID, so that no secret has
to be on the command line. Prints a table (or ``--json``); exits 0 when every required check
passed, 1 when one failed, 2 on a usage error or when the base URL cannot be reached at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from tools.conformance.context import DEFAULT_TIMEOUT, Options
from tools.conformance.report import EXIT_UNUSABLE
from tools.conformance.runner import run

ENVIRONMENT = {
    "client_id": "EHRB_CHECK_CLIENT_ID",
    "client_secret": "EHRB_CHECK_CLIENT_SECRET",
    "tenant": "EHRB_CHECK_TENANT",
    "patient_id": "EHRB_CHECK_PATIENT_ID",
}
SECRET_ON_COMMAND_LINE = (
    "note: a secret on the command line shows in process lists and shell history; "
    f"prefer {ENVIRONMENT['client_secret']}"
)


class UsageError(Exception):
    """The command line cannot be run as given."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting, so ``main`` decides the output."""
        raise UsageError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m tools.conformance",
        description="Replay the Microsoft Teams Patients app's calls against a FHIR base URL "
        "and check every field the app needs (docs/conformance.md).",
    )
    parser.add_argument("base_url", help="the FHIR base, e.g. https://host/api/fhir/stu3")
    parser.add_argument("--client-id", help=f"OAuth client id (or {ENVIRONMENT['client_id']})")
    parser.add_argument(
        "--client-secret",
        help=f"OAuth client secret (better: {ENVIRONMENT['client_secret']})",
    )
    parser.add_argument(
        "--tenant", help=f"sent as scope in the token request (or {ENVIRONMENT['tenant']})"
    )
    parser.add_argument(
        "--patient-id",
        help=f"the patient to check (or {ENVIRONMENT['patient_id']}); "
        "default: the first one a search finds",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="the server is open: no OAuth expected, no token requested",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds per request (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates, and allow a plain-HTTP token URL (test servers only)",
    )
    return parser


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Options, bool]:
    """Options from the arguments (the environment filling what they leave out), and --json."""
    args = _parser().parse_args(list(argv))
    split = urlsplit(args.base_url)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise UsageError(f"the base URL must be an absolute http(s) URL, not {args.base_url!r}")
    if split.query or split.fragment:
        raise UsageError("the base URL must not have a query or a fragment")
    if not 0 < args.timeout <= 600:
        raise UsageError("--timeout must be between 0 and 600 seconds")

    def pick(name: str) -> str | None:
        value = getattr(args, name) or environ.get(ENVIRONMENT[name]) or None
        return value.strip() if isinstance(value, str) and value.strip() else None

    return Options(
        base_url=args.base_url.rstrip("/"),
        client_id=pick("client_id"),
        client_secret=pick("client_secret"),
        tenant=pick("tenant"),
        patient_id=pick("patient_id"),
        no_auth=args.no_auth,
        timeout=args.timeout,
        verify=not args.insecure,
    ), args.json


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the checks the command line asks for; print the report; answer the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        options, as_json = parse_options(arguments, os.environ if environ is None else environ)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    except SystemExit as done:  # --help
        return int(done.code or 0)
    if any(a == "--client-secret" or a.startswith("--client-secret=") for a in arguments):
        print(SECRET_ON_COMMAND_LINE, file=sys.stderr)
    with warnings.catch_warnings():
        if not options.verify:
            print("warning: TLS certificates are not verified (--insecure)", file=sys.stderr)
            warnings.simplefilter("ignore")
        report = run(options)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(report.to_text())
    if report.unreachable is not None:
        print(f"error: cannot reach the server: {report.unreachable}", file=sys.stderr)
    return report.exit_code
