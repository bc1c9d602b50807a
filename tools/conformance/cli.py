"""The command line: ``python -m tools.conformance BASE_URL [options]``.

Client id, secret, tenant and patient id may come from EHRB_CHECK_CLIENT_ID,
EHRB_CHECK_CLIENT_SECRET, EHRB_CHECK_TENANT and EHRB_CHECK_PATIENT_ID, so that no secret has
to be on the command line. Prints a table (or ``--json``) and with ``--report`` also writes a
FHIR R4 TestReport. Exits 0 when every required check passed, 1 when one failed, 2 on a usage
error or when the base URL cannot be reached at all, 3 when no required check failed but some
could not be judged (the run is incomplete, not a pass).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from tools.conformance.context import DEFAULT_TIMEOUT, Options
from tools.conformance.discover import CANDIDATES
from tools.conformance.report import EXIT_UNUSABLE
from tools.conformance.runner import run
from tools.conformance.testreport import as_test_report

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


@dataclass(frozen=True)
class Output:
    """What to print and write besides the run itself."""

    as_json: bool = False
    # Where to write the run as a FHIR TestReport, if anywhere.
    report: Path | None = None


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
        help=f"the patient to check (or {ENVIRONMENT['patient_id']}); default: of the "
        f"first {CANDIDATES} a search finds, the one whose chart lets the most checks run",
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=1,
        metavar="N",
        help=f"without --patient-id: check the N fullest charts (1 to {CANDIDATES}) and say "
        "per check how many patients passed it",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="the server is open: no OAuth expected, no token requested",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write the run to FILE as a FHIR R4 TestReport (JSON)",
    )
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


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Options, Output]:
    """Options from the arguments (the environment filling gaps), and what to output."""
    args = _parser().parse_args(list(argv))
    split = urlsplit(args.base_url)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise UsageError(f"the base URL must be an absolute http(s) URL, not {args.base_url!r}")
    if split.query or split.fragment:
        raise UsageError("the base URL must not have a query or a fragment")
    # The base URL is printed and goes into the TestReport: credentials have their own options.
    if "@" in split.netloc:
        raise UsageError("the base URL must not hold credentials (use --client-id and a secret)")
    if not 0 < args.timeout <= 600:
        raise UsageError("--timeout must be between 0 and 600 seconds")
    if not 1 <= args.patients <= CANDIDATES:
        raise UsageError(f"--patients must be between 1 and {CANDIDATES}")
    if args.report is not None:
        _writable(args.report)

    def pick(name: str) -> str | None:
        value = getattr(args, name) or environ.get(ENVIRONMENT[name]) or None
        return value.strip() if isinstance(value, str) and value.strip() else None

    patient_id = pick("patient_id")
    if patient_id and args.patients != 1:
        raise UsageError("--patients chooses patients by search: leave out --patient-id")
    return Options(
        base_url=args.base_url.rstrip("/"),
        client_id=pick("client_id"),
        client_secret=pick("client_secret"),
        tenant=pick("tenant"),
        patient_id=patient_id,
        patients=args.patients,
        no_auth=args.no_auth,
        timeout=args.timeout,
        verify=not args.insecure,
    ), Output(as_json=args.json, report=args.report)


def _writable(path: Path) -> None:
    """Refuse a --report path that cannot be written, before anything is checked."""
    if path.is_dir():
        raise UsageError(f"--report {path}: is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"--report {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--report {path}: not writable")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the checks the command line asks for; print the report; answer the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        options, output = parse_options(arguments, os.environ if environ is None else environ)
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
    if output.as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(report.to_text())
    if report.unreachable is not None:
        print(f"error: cannot reach the server: {report.unreachable}", file=sys.stderr)
    if output.report is not None:
        document = json.dumps(as_test_report(report), indent=2, ensure_ascii=False) + "\n"
        try:
            output.report.write_text(document, encoding="utf-8")
        except OSError as error:
            print(f"error: cannot write {output.report}: {error.strerror}", file=sys.stderr)
            return EXIT_UNUSABLE
        print(f"TestReport written to {output.report}", file=sys.stderr)
    return report.exit_code
