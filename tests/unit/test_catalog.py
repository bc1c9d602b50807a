"""The catalogue of resource types (shared/fhir/catalog.py) agrees with everything built on it.

What each face's metadata promises, what the path grammar lets through, what converts (and
that every converter module fulfils the contract), how requests and paging links are
translated, what a provider that cannot sort gets sorted by, and what the sandbox keeps,
searches and declares: each is checked here against the catalogue through the module's own
public behaviour, so a type or parameter added in one place only fails here.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from shared import metadata
from shared.fhir import convert
from shared.fhir.catalog import RESOURCE_TYPES, ResourceType, Row, chart_headings
from shared.fhir.convert import contract
from shared.fhir.convert.request import (
    ParameterNotConvertible,
    convert_link_url,
    convert_path,
    convert_query,
)
from shared.fhir.errors import NotFound
from shared.fhir.paths import ALLOWED_TYPES, parse_fhir_path
from shared.fhir.versions import VERSIONS, FhirVersion
from shared.proxy.compensate import DATE_PATHS, sort_key
from shared.sandbox import capability, layout, query
from tools.testkit.data import SEARCH_PARAMETERS, data_file

PROXIED = [t for t in RESOURCE_TYPES if t.proxied]
APP_READS = [t for t in RESOURCE_TYPES if t.app_reads]
SANDBOX = [t for t in RESOURCE_TYPES if t.sandbox]
CONVERTS = [t for t in RESOURCE_TYPES if t.converter]
PAIRS = [(s, t) for s in VERSIONS for t in VERSIONS if s != t]
SEARCH_PARAMETER_BASE = "http://hl7.org/fhir/SearchParameter/"
OFFICIAL_BUNDLES = {
    FhirVersion.DSTU2: "search-parameters-dstu2-1.0.2.json",
    FhirVersion.STU3: "search-parameters-stu3-3.0.0.json",
    FhirVersion.R4: "search-parameters-r4-4.0.1.json",
}
# Parameters the faces promise that the sandbox does not serve, each a known gap kept as it is
# (the catalogue says why). Adding one here is a decision, not a fix. None today.
SANDBOX_GAPS: set[tuple[str, str]] = set()


def by_name(entries: list[ResourceType]) -> list[Any]:
    return [pytest.param(t, id=t.name) for t in entries]


def face_statement(face: str) -> dict[str, Any]:
    return metadata.capability_statement(
        face, "https://bridge.example/token", software_version="1", published="2026-01-01"
    )


def listed(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["type"]: resource for resource in statement["rest"][0]["resource"]}


def sandbox_statement() -> dict[str, Any]:
    return capability.capability_statement("https://bridge.example/api/sandbox/fhir")


@functools.cache
def official(version: FhirVersion) -> dict[str, dict[str, Any]]:
    """SearchParameter id (the end of its URL) -> the definition, from the official bundle."""
    path = data_file(SEARCH_PARAMETERS / OFFICIAL_BUNDLES[version])
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return {
        entry["fullUrl"].removeprefix(SEARCH_PARAMETER_BASE): entry["resource"]
        for entry in bundle["entry"]
    }


# -- the catalogue itself -----------------------------------------------------------------------


def test_every_name_of_every_release_belongs_to_one_type() -> None:
    seen: dict[str, str] = {}
    for entry in RESOURCE_TYPES:
        for name in entry.names:
            assert seen.setdefault(name, entry.name) == entry.name, name


def test_what_the_app_reads_or_the_sandbox_keeps_is_proxied_and_what_is_proxied_converts() -> None:
    # Every face works over every provider version, so whatever a face forwards must convert.
    for entry in RESOURCE_TYPES:
        assert not entry.app_reads or entry.proxied, entry.name
        assert not entry.proxied or entry.converter, entry.name
        assert not entry.sandbox or entry.proxied, entry.name


def test_the_sandbox_keeps_every_type_the_app_reads() -> None:
    # The sandbox exists to answer the app's calls end to end.
    assert {t.name for t in APP_READS} <= {t.name for t in SANDBOX}


@pytest.mark.parametrize("entry", by_name([t for t in RESOURCE_TYPES if t.by_patient]))
def test_a_chart_type_is_read_by_the_app_by_patient_and_has_a_heading(entry: ResourceType) -> None:
    assert entry.app_reads and entry.heading
    assert any(p.name == "patient" and p.app_sends for p in entry.search)


def test_only_chart_types_have_a_heading() -> None:
    assert all(bool(t.heading) == t.by_patient for t in RESOURCE_TYPES)


@pytest.mark.parametrize("entry", by_name([t for t in RESOURCE_TYPES if t.search]))
def test_every_definition_is_its_releases_official_search_parameter(entry: ResourceType) -> None:
    for param in entry.search:
        for version in VERSIONS:
            definition = param.definitions[version]
            if definition is None:
                assert param.undefined_note or not param.app_sends, (param.name, version)
                continue
            found = official(version).get(definition)
            assert found is not None, (param.name, version, definition)
            assert found["code"] == param.name, (definition, version)
            assert found["type"] == param.type, (definition, version)
            bases = found["base"] if isinstance(found["base"], list) else [found["base"]]
            assert {entry.name_in(version), "Resource", "DomainResource"} & set(bases)


def test_sortable_parameters_belong_to_types_with_dates_to_sort_on() -> None:
    for entry in RESOURCE_TYPES:
        if any(p.sortable for p in entry.search):
            assert entry.sort_dates, entry.name


# -- the faces' metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("face", VERSIONS)
def test_each_face_lists_exactly_the_types_the_app_reads_by_its_own_names(face: str) -> None:
    assert set(listed(face_statement(face))) == {t.name_in(face) for t in APP_READS}


@pytest.mark.parametrize("face", VERSIONS)
@pytest.mark.parametrize("entry", by_name(APP_READS))
def test_each_face_promises_the_catalogues_parameters_and_definitions(
    face: str, entry: ResourceType
) -> None:
    resource = listed(face_statement(face))[entry.name_in(face)]
    searched = {param["name"]: param for param in resource.get("searchParam", [])}
    promised = [p for p in entry.search if p.app_sends]
    assert set(searched) == {p.name for p in promised}
    for param in promised:
        definition = param.definitions[face]
        expected = SEARCH_PARAMETER_BASE + definition if definition else None
        assert searched[param.name].get("definition") == expected, param.name
        assert searched[param.name]["type"] == param.type
    interactions = {i["code"] for i in resource["interaction"]}
    assert interactions == ({"read", "search-type"} if promised else {"read"})


# -- the path grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize("face", VERSIONS)
def test_the_path_grammar_lets_through_exactly_the_proxied_types_by_the_faces_names(
    face: str,
) -> None:
    allowed = ALLOWED_TYPES[face]
    for entry in RESOURCE_TYPES:
        for name in entry.names:
            if entry.proxied and name == entry.name_in(face):
                assert parse_fhir_path(f"{name}/1", allowed_types=allowed).resource_type == name
            else:
                with pytest.raises(NotFound):
                    parse_fhir_path(f"{name}/1", allowed_types=allowed)
    assert allowed == {t.name_in(face) for t in PROXIED}


# -- conversion and the converter contract --------------------------------------------------------


def test_supports_says_which_names_of_every_release_convert() -> None:
    for entry in RESOURCE_TYPES:
        for name in entry.names:
            assert convert.supports(name) == (entry.converter is not None), name
    assert not convert.supports("NoSuchType")


@pytest.mark.parametrize("entry", by_name(CONVERTS))
def test_every_converter_module_fulfils_the_contract(entry: ResourceType) -> None:
    assert entry.converter is not None
    converter = contract.load(entry.converter, converts_entries=entry.converts_entries)
    for source, target in contract.STEPS:
        step = converter.step(source, target)
        inspect.signature(step).bind({"resourceType": entry.name_in(source)})
    if entry.converts_entries:
        inspect.signature(converter.module.convert_through).bind({}, ())


def test_the_protocols_name_the_functions_the_loader_requires() -> None:
    def members(protocol: type) -> set[str]:
        return {name for name in vars(protocol) if not name.startswith("_")}

    assert members(contract.ResourceSteps) == set(contract.required_functions(False))
    assert members(contract.ResourceSteps) | members(contract.EntrySteps) == set(
        contract.required_functions(True)
    )


def test_only_bundle_converts_its_entries_over_the_whole_chain() -> None:
    assert [t.name for t in RESOURCE_TYPES if t.converts_entries] == ["Bundle"]


@pytest.fixture
def stub_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A converter module ``shared.fhir.convert.stub`` with one step missing."""
    module = types.ModuleType("shared.fhir.convert.stub")

    def step(resource: dict[str, Any]) -> dict[str, Any]:
        return resource

    module.r4_to_stu3 = step  # type: ignore[attr-defined]
    module.stu3_to_r4 = step  # type: ignore[attr-defined]
    module.stu3_to_dstu2 = "not a function"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    yield module


def test_a_module_breaking_the_contract_is_refused_naming_what_it_lacks(
    stub_module: types.ModuleType,
) -> None:
    with pytest.raises(contract.ContractBroken) as refused:
        contract.load("stub", converts_entries=True)
    assert str(refused.value) == (
        "shared.fhir.convert.stub does not define stu3_to_dstu2, dstu2_to_stu3, convert_through"
    )


# -- request translation ------------------------------------------------------------------------


def _first_rows(rows: tuple[Row, ...], column: int) -> Iterator[Row]:
    """The rows a lookup by ``column`` finds: the first one for each name."""
    seen: set[str] = set()
    for row in rows:
        name = row[column]
        if name is not None and name not in seen:
            seen.add(name)
            yield row


def _renames(kind: str) -> list[Any]:
    cases = []
    for entry in RESOURCE_TYPES:
        rows = entry.parameter_renames if kind == "parameter" else entry.element_renames
        for s, t in PAIRS:
            for row in _first_rows(rows, VERSIONS.index(s)):
                name = row[VERSIONS.index(s)]
                cases.append(pytest.param(entry, s, t, row, id=f"{entry.name}-{name}-{s}-{t}"))
    return cases


@pytest.mark.parametrize(("entry", "source", "target", "row"), _renames("parameter"))
def test_each_search_parameter_is_translated_as_its_catalogue_row(
    entry: ResourceType, source: str, target: str, row: Row
) -> None:
    name, wanted = row[VERSIONS.index(source)], row[VERSIONS.index(target)]
    if wanted is None:
        with pytest.raises(ParameterNotConvertible):
            convert_query(f"{name}=x", entry.name_in(source), source, target)
    else:
        assert convert_query(f"{name}=x", entry.name_in(source), source, target) == f"{wanted}=x"


@pytest.mark.parametrize(("entry", "source", "target", "row"), _renames("element"))
def test_each_element_name_is_translated_as_its_catalogue_row(
    entry: ResourceType, source: str, target: str, row: Row
) -> None:
    name, wanted = row[VERSIONS.index(source)], row[VERSIONS.index(target)]
    translated = convert_query(f"_elements={name}", entry.name_in(source), source, target)
    assert translated == f"_elements={wanted}"


@pytest.mark.parametrize("entry", by_name(PROXIED))
@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_a_paging_link_to_a_proxied_type_speaks_the_targets_names(
    entry: ResourceType, source: str, target: str
) -> None:
    # A parameter the pair renames shows that the link's type was recognised.
    renamed = [
        (row[VERSIONS.index(source)], row[VERSIONS.index(target)])
        for row in _first_rows(entry.parameter_renames, VERSIONS.index(source))
        if row[VERSIONS.index(target)] not in (None, row[VERSIONS.index(source)])
    ]
    old, new = renamed[0] if renamed else ("_count", "_count")
    link = f"https://fhir.example/base/{entry.name_in(source)}?{old}=x"
    assert convert_link_url(link, source, target) == (
        f"https://fhir.example/base/{entry.name_in(target)}?{new}=x"
    )
    assert convert_path(f"{entry.name_in(source)}/1", source, target) == (
        f"{entry.name_in(target)}/1"
    )


def _uncatalogued_types() -> list[Any]:
    """(release, type, its parameter codes) for every type outside the catalogue that the
    release's official bundle defines search parameters for."""
    known = {name for entry in RESOURCE_TYPES for name in entry.names}
    cases = []
    for version in VERSIONS:
        codes: dict[str, set[str]] = {}
        for definition in official(version).values():
            base = definition["base"]
            for kind in base if isinstance(base, list) else [base]:
                if kind not in known | {"Resource", "DomainResource"}:
                    codes.setdefault(kind, set()).add(definition["code"])
        cases += [
            pytest.param(version, kind, sorted(codes[kind]), id=f"{version}-{kind}")
            for kind in sorted(codes)
        ]
    return cases


def test_the_official_bundles_define_types_outside_the_catalogue() -> None:
    # The bundles in tests/data keep the catalogue's types; a definition STU3 or R4 shares
    # between several types (clinical-patient, …) names others too.
    assert {case.values[0] for case in _uncatalogued_types()} == {"stu3", "r4"}


@pytest.mark.parametrize(("source", "kind", "codes"), _uncatalogued_types())
def test_a_type_outside_the_catalogue_has_its_parameters_passed_on_unchanged(
    source: str, kind: str, codes: list[str]
) -> None:
    # Request translation knows a type's parameters only through its catalogue entry.
    for target in VERSIONS:
        for code in codes:
            assert convert_query(f"{code}=x", kind, source, target) == f"{code}=x", (target, code)


# -- sorting for a provider that cannot ---------------------------------------------------------


@pytest.mark.parametrize("entry", by_name([t for t in RESOURCE_TYPES if t.sort_dates]))
def test_compensation_sorts_each_releases_documents_by_the_catalogues_dates(
    entry: ResourceType,
) -> None:
    for version in VERSIONS:
        paths = [path for path, versions in entry.sort_dates if version in versions]
        document: dict[str, Any] = {"resourceType": entry.name_in(version)}
        # Each date alone is the sort key; with all of them, the first listed wins.
        for index, path in reversed(list(enumerate(paths))):
            alone: dict[str, Any] = {"resourceType": entry.name_in(version)}
            for holder in (alone, document):
                *parents, leaf = path.split(".")
                node = holder
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = f"2020-01-0{index + 1}"
            assert sort_key(alone) == f"2020-01-0{index + 1}", (version, path)
        assert sort_key(document) == ("2020-01-01" if paths else ""), version


def test_compensation_knows_dates_of_exactly_the_dated_types() -> None:
    dated = {name for entry in RESOURCE_TYPES if entry.sort_dates for name in entry.names}
    assert set(DATE_PATHS) == dated
    for entry in RESOURCE_TYPES:
        if not entry.sort_dates:
            assert sort_key({"resourceType": entry.name, "period": {"start": "2020"}}) == ""


# -- the sandbox --------------------------------------------------------------------------------


def test_the_sandbox_keeps_exactly_the_catalogues_sandbox_types_with_their_patients() -> None:
    assert tuple(t.name for t in SANDBOX) == layout.SUPPORTED_TYPES
    assert dict(layout.PATIENT_ELEMENT) == {
        t.name: t.patient_element for t in SANDBOX if t.patient_element
    }


def test_the_sandbox_statement_declares_the_catalogues_types_and_parameters() -> None:
    resources = listed(sandbox_statement())
    assert list(resources) == [t.name for t in SANDBOX]
    for entry in SANDBOX:
        declared = {p["name"]: p for p in resources[entry.name]["searchParam"]}
        served = [p for p in entry.search if p.sandbox]
        sorts = {"_sort"} if entry.name in query.DATED_TYPES else set()
        assert set(declared) == {"_id", *(p.name for p in served), *sorts}, entry.name
        assert declared["_id"]["definition"] == SEARCH_PARAMETER_BASE + "Resource-id"
        for param in served:
            definition = param.definitions[FhirVersion.R4]
            assert declared[param.name]["definition"] == SEARCH_PARAMETER_BASE + str(definition)
            assert declared[param.name]["type"] == param.type


def test_the_sandbox_sorts_by_date_only_types_the_catalogue_dates() -> None:
    assert {t.name for t in SANDBOX if t.sort_dates} >= query.DATED_TYPES


def _promises() -> list[Any]:
    return [
        pytest.param(face, entry, param, id=f"{face}-{entry.name}-{param.name}")
        for face in VERSIONS
        for entry in APP_READS
        for param in entry.search
        if param.app_sends
    ]


@pytest.mark.parametrize(("face", "entry", "param"), _promises())
def test_every_search_a_face_promises_reaches_what_the_sandbox_serves(
    face: str, entry: ResourceType, param: Any
) -> None:
    # The sandbox is an R4 provider: the face's request, translated to R4, must meet a
    # parameter its statement declares (and its searches accept), and a sort one it sorts on.
    path = convert_path(entry.name_in(face), face, "r4")
    modifier = f":{param.modifiers[0]}" if param.modifiers and face == "dstu2" else ""
    translated = convert_query(f"{param.name}{modifier}=x", entry.name_in(face), face, "r4")
    name = translated.partition("=")[0].partition(":")[0]
    declared = {p["name"] for p in listed(sandbox_statement())[path]["searchParam"]}
    if (path, name) in SANDBOX_GAPS:
        assert name not in declared
    else:
        assert name in declared
    if param.sortable:
        assert "_sort" in declared


def test_the_known_sandbox_gaps_are_the_catalogues() -> None:
    gaps = {(t.name, p.name) for t in APP_READS for p in t.search if p.app_sends and not p.sandbox}
    assert gaps == SANDBOX_GAPS


def test_the_sandbox_editor_lists_a_patients_chart_types() -> None:
    from shared.sandbox.ui import RECORD_TYPES

    assert chart_headings() == RECORD_TYPES
    assert [name for name, _ in chart_headings()] == [t.name for t in SANDBOX if t.by_patient]
