"""Static checks of the Bicep templates in ``infra/``, for the checks that can run here.

The Bicep CLI cannot be installed on this machine (it downloads a binary), so ``make
infra-check`` runs this with the checkov virtualenv's Python (``.venv-infra``), where pycep (the
Bicep parser checkov itself uses) is available:

1. every ``infra/**/*.bicep`` file must parse with pycep, and modules must be local files
   (checkov does not look inside registry modules, and registries cannot be reached here);
2. the parsed templates are written to ``.local/infra-model.json`` for ``tests/infra`` (the main
   virtualenv has no pycep; the model is keyed by each file's SHA-256, so a stale one is seen);
3. checkov's Bicep framework runs offline; the check fails on any failed check, any parsing
   error (checkov itself exits 0 on those), any file checkov silently left out, any suppression
   without a one-line reason, and any suppression checkov did not use.

``--model-only`` does steps 1 and 2 (what ``tests/infra`` needs). Exit 0 when everything holds,
1 otherwise; the report goes to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MODEL = ROOT / ".local" / "infra-model.json"
MODEL_VERSION = 1

# `//checkov:skip=CKV_AZURE_35:reason` (checkov's own syntax); the reason is what we require.
SUPPRESSION = re.compile(r"checkov:skip=([A-Za-z0-9_,-]+)(?::(.*))?")
MIN_REASON_CHARS = 20
# Resource types checkov has Bicep/ARM checks for: a file declaring one must show up in its
# results, or checkov skipped the file without saying so.
CHECKED_TYPES = frozenset(
    {
        "Microsoft.KeyVault/vaults",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Web/serverfarms",
        "Microsoft.Web/sites",
    }
)
REGISTRY_PREFIXES = ("br:", "br/", "ts:", "ts/")


def bicep_files(infra: Path = INFRA) -> list[Path]:
    """Every Bicep file under ``infra``, in a stable order."""
    return sorted(infra.rglob("*.bicep"))


def source_digests(root: Path = ROOT, infra: Path = INFRA) -> dict[str, str]:
    """SHA-256 of each Bicep file, by path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in bicep_files(infra)
    }


def parse_templates(root: Path = ROOT, infra: Path = INFRA) -> tuple[dict[str, Any], list[str]]:
    """The pycep model of every Bicep file, and one error line per file that does not parse or
    uses a registry module."""
    from pycep import BicepParser  # only in .venv-infra (checkov's dependency)

    models: dict[str, Any] = {}
    errors: list[str] = []
    for path in bicep_files(infra):
        name = path.relative_to(root).as_posix()
        try:
            model = BicepParser().parse(file_path=path)
        except Exception as error:  # lark raises several types; all mean "does not parse"
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            errors.append(f"{name}: does not parse: {type(error).__name__}: {first}")
            continue
        models[name] = json.loads(json.dumps(model, default=str))
        for module, spec in (model.get("modules") or {}).items():
            source = str((spec.get("detail") or {}).get("path") or "")
            if spec.get("type") != "local" or source.startswith(REGISTRY_PREFIXES):
                errors.append(f"{name}: module {module!r} is not a local file ({source})")
            elif not (path.parent / source).is_file():
                errors.append(f"{name}: module {module!r} points at a missing file ({source})")
    return models, errors


def write_model(models: dict[str, Any], digests: dict[str, str], target: Path = MODEL) -> None:
    """Write the model atomically (pytest workers may read it while another writes it)."""
    from importlib.metadata import version

    document = {
        "version": MODEL_VERSION,
        "parser": f"pycep-parser {version('pycep-parser')}",
        "sources": digests,
        "templates": models,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".infra-model.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=1, sort_keys=True)
    os.replace(temporary, target)


def suppressions(root: Path = ROOT, infra: Path = INFRA) -> list[dict[str, Any]]:
    """Every ``checkov:skip`` comment: file (relative to ``infra``), line, check id, reason."""
    found: list[dict[str, Any]] = []
    for path in bicep_files(infra):
        relative = "/" + path.relative_to(infra).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SUPPRESSION.search(line)
            if not match:
                continue
            for check_id in match.group(1).split(","):
                found.append(
                    {
                        "file": relative,
                        "line": number,
                        "check_id": check_id,
                        "reason": (match.group(2) or "").strip(),
                        "comment": line.lstrip().startswith("//"),
                    }
                )
    return found


def run_checkov(infra: Path = INFRA) -> dict[str, Any]:
    """checkov's JSON report for the Bicep framework, offline."""
    checkov = Path(sys.executable).with_name("checkov")
    command = [
        str(checkov),
        "--directory",
        str(infra),
        "--framework",
        "bicep",
        "--skip-download",
        "--output",
        "json",
    ]
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=600, check=False
    )
    # Exit 1 only says "some check failed"; anything else without JSON is checkov breaking.
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(
            f"checkov exited {result.returncode} without a JSON report: {result.stderr[-2000:]}"
        ) from None
    if isinstance(report, list):  # one entry per framework when several ran
        report = next(r for r in report if r.get("check_type") == "bicep")
    if not isinstance(report, dict) or "results" not in report:
        # checkov prints a bare summary when it found nothing to scan at all.
        raise RuntimeError(f"checkov found nothing to scan: {result.stdout[:500]}")
    return report


def review(
    report: dict[str, Any], found: list[dict[str, Any]], models: dict[str, Any], infra_name: str
) -> tuple[list[str], list[str]]:
    """(problems, notes) from checkov's report and the suppressions in the sources."""
    problems: list[str] = []
    notes: list[str] = []
    results = report["results"]
    for error in results.get("parsing_errors") or []:
        problems.append(f"checkov could not parse {error}")
    for check in results.get("failed_checks") or []:
        problems.append(
            f"FAILED {check['check_id']} {check['file_path']} {check['resource']}: "
            f"{check['check_name']}"
        )
    used = {(c["file_path"], c["check_id"]) for c in results.get("skipped_checks") or []}
    for item in found:
        where = f"{infra_name}{item['file']}:{item['line']}"
        if not item["comment"]:
            problems.append(f"{where}: a suppression must be a // line comment")
        if len(item["reason"]) < MIN_REASON_CHARS:
            problems.append(f"{where}: suppression of {item['check_id']} needs a one-line reason")
        if (item["file"], item["check_id"]) not in used:
            problems.append(f"{where}: suppression of {item['check_id']} is not used by checkov")
        notes.append(f"  {item['check_id']} {item['file']}:{item['line']}  {item['reason']}")
    reported = {
        c["file_path"]
        for key in ("passed_checks", "failed_checks", "skipped_checks")
        for c in results.get(key) or []
    }
    for name, model in models.items():
        declared = (model.get("resources") or {}).values()
        types = {r.get("type") for r in declared if not r.get("existing")}
        relative = "/" + name.removeprefix(f"{infra_name}/")
        if types & CHECKED_TYPES and relative not in reported:
            problems.append(f"checkov reported nothing for {name}, which declares {sorted(types)}")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print a report; 0 when everything holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-only", action="store_true", help="parse and write the model; skip checkov"
    )
    args = parser.parse_args(argv)

    files = bicep_files()
    if not files:
        print("infra-check: no .bicep files under infra/")
        return 1
    models, problems = parse_templates()
    print(f"infra-check: parsed {len(models)} of {len(files)} Bicep files with pycep")
    if not problems:
        write_model(models, source_digests())
        print(f"infra-check: model written to {MODEL.relative_to(ROOT)}")
    if not args.model_only and not problems:
        report = run_checkov()
        summary = report.get("summary", {})
        found = suppressions()
        more, notes = review(report, found, models, INFRA.name)
        problems += more
        print(
            f"infra-check: checkov {summary.get('checkov_version', '?')} (bicep): "
            f"{summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
            f"{summary.get('skipped', 0)} suppressed, "
            f"{summary.get('parsing_errors', 0)} parsing errors"
        )
        if notes:
            print("infra-check: suppressed inline, with their reasons:")
            print("\n".join(notes))
    for problem in problems:
        print(f"infra-check: {problem}")
    print("infra-check: " + ("FAILED" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
