"""FHIR proxy paths and search parameters: what is forwarded, what is refused, and the upstream URL.

Cases follow docs/security.md §4 rows 47 (traversal and SSRF), 48 (CR/LF/NUL),
50 (allow-list) and 61 (search abuse), plus the Patients app's real calls.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.fhir.errors import FhirError, InvalidRequest, NotFound
from shared.fhir.paths import (
    ALLOWED_OPERATIONS,
    ALLOWED_TYPES,
    FhirPath,
    face_relative_path,
    parse_fhir_path,
    parse_form_body,
    upstream_url,
    validate_query,
)

STU3 = ALLOWED_TYPES["stu3"]
BASE = "https://fhir.hospital-a.example/r4"
BASES = (BASE, "https://fhir.hospital-a.example", "http://127.0.0.1:8080/fhir/")


def parse(raw: str) -> FhirPath:
    return parse_fhir_path(raw, allowed_types=STU3)


def parse_url_path(url_path: str) -> FhirPath:
    """The whole chain a handler runs on a request URL's path."""
    return parse(face_relative_path(url_path, "stu3"))


# --- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "resource_type", "resource_id", "interaction"),
    [
        ("", None, None, "base"),
        ("Patient", "Patient", None, "type"),
        ("Patient/123", "Patient", "123", "instance"),
        ("Patient/a-b.C9", "Patient", "a-b.C9", "instance"),
        ("Patient/_search", "Patient", None, "search-post"),
        ("Patient/123/_history", "Patient", "123", "history"),
        ("Patient/123/_history/4", "Patient", "123", "history"),
        ("MedicationRequest/m1", "MedicationRequest", "m1", "instance"),
    ],
)
def test_grammar_accepts_the_fhir_interactions_the_proxy_forwards(
    raw, resource_type, resource_id, interaction
):
    path = parse(raw)
    assert (path.resource_type, path.resource_id, path.interaction) == (
        resource_type,
        resource_id,
        interaction,
    )


def test_history_version_id_is_reported():
    assert parse("Patient/123/_history/4").version_id == "4"
    assert parse("Patient/123/_history").version_id is None


def test_relative_path_joins_the_segments():
    assert parse("Patient/123/_history/4").relative == "Patient/123/_history/4"
    assert parse("").relative == ""


def test_an_id_of_64_characters_is_accepted_and_65_refused():
    assert parse("Patient/" + "a" * 64).resource_id == "a" * 64
    with pytest.raises(InvalidRequest):
        parse("Patient/" + "a" * 65)


def test_percent_encoded_letters_are_decoded_once():
    assert parse("Pati%65nt/%31%32").segments == ("Patient", "12")


@pytest.mark.parametrize("raw", ["Foo", "Foo/1", "metadata", "patient/1", "MedicationOrder/1"])
def test_resource_type_outside_the_faces_allow_list_is_not_found(raw):
    with pytest.raises(NotFound) as caught:
        parse(raw)
    assert caught.value.status == 404
    assert caught.value.diagnostics == "unsupported resource type"


def test_each_face_has_its_own_medication_prescription_type():
    assert "MedicationOrder" in ALLOWED_TYPES["dstu2"]
    assert "MedicationRequest" not in ALLOWED_TYPES["dstu2"]
    assert (
        "MedicationRequest" in ALLOWED_TYPES["stu3"] and "MedicationRequest" in ALLOWED_TYPES["r4"]
    )
    assert "MedicationOrder" not in ALLOWED_TYPES["r4"]
    for face in ("dstu2", "stu3", "r4"):
        assert "Patient" in ALLOWED_TYPES[face]
        assert "metadata" not in ALLOWED_TYPES[face]


@pytest.mark.parametrize(
    "raw",
    ["$purge", "$everything", "Patient/$purge", "Patient/1/$everything", "Patient/$meta-delete"],
)
def test_operations_are_refused_while_none_is_allow_listed(raw):
    assert not ALLOWED_OPERATIONS
    with pytest.raises(InvalidRequest) as caught:
        parse(raw)
    assert caught.value.status == 400
    assert caught.value.diagnostics == "operation not allowed"


def test_an_allow_listed_operation_is_accepted_and_sent_with_a_literal_dollar():
    path = parse_fhir_path(
        "Patient/1/$everything", allowed_types=STU3, allowed_operations=frozenset({"everything"})
    )
    assert path.interaction == "operation"
    assert upstream_url(BASE, path, "") == f"{BASE}/Patient/1/$everything"


@pytest.mark.parametrize(
    "raw",
    [
        "Patient/_search/x",
        "Patient/1/_history/2/3",
        "Patient/1/Observation",
        "Patient/1/_history/_x",
        "Patient/_history",
        "Patient/a_b",
        "Patient/1/_history/" + "9" * 65,
    ],
)
def test_paths_outside_the_grammar_are_invalid(raw):
    with pytest.raises(InvalidRequest):
        parse(raw)


# --- row 47: traversal and SSRF ----------------------------------------------------------------

ROW_47_URL_PATHS = [
    "/api/fhir/stu3/Patient/..%2F..%2Fx",
    "/api/fhir/stu3/Patient/..%2f..%2fx",
    "/api/fhir/stu3/%2e%2e/",
    "/api/fhir/stu3/%2e%2e/x",
    "/api/fhir/stu3/Patient/%252e%252e%252f",
    "/api/fhir/stu3/..\\",
    "/api/fhir/stu3/Patient/..\\x",
    "/api/fhir/stu3/http://evil/x",
    "/api/fhir/stu3/https:%2F%2Fevil/x",
    "/api/fhir/stu3//evil/x",
    "/api/fhir/stu3/@evil/x",
    "/api/fhir/stu3/Patient/@evil",
]


@pytest.mark.parametrize("url_path", ROW_47_URL_PATHS)
def test_row_47_traversal_and_ssrf_paths_are_refused_with_400(url_path):
    with pytest.raises(InvalidRequest) as caught:
        parse_url_path(url_path)
    assert caught.value.status == 400
    assert caught.value.code == "invalid"


# Deployed Azure decodes %2F (and more) before the function sees the URL: the same attacks
# arrive with real slashes and must still be refused.
@pytest.mark.parametrize(
    "raw",
    [
        "Patient/../../x",
        "../",
        "..",
        "Patient/%2e%2e/x",
        "Patient/./1",
        "Patient/.../x",
        "Patient/1/..",
        "http://evil/x",
        "/evil/x",
        "@evil/x",
        "Patient/1:2",
        "Patient/%40evil",
        "Patient\\1",
        "Patient%5C1",
        "Patient%5c1",
        "Patient%2F1",
    ],
)
def test_traversal_is_refused_in_the_azure_decoded_form_too(raw):
    with pytest.raises(InvalidRequest):
        parse(raw)


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("Patient//1", "empty path segments are not allowed"),
        ("Patient/1/", "empty path segments are not allowed"),
        ("Patient/..", "dot segments are not allowed in the path"),
        ("Patient/%2e", "dot segments are not allowed in the path"),
        ("Patient/%252e%252e", "double percent-encoding is not allowed in the path"),
        ("Patient/%25", "double percent-encoding is not allowed in the path"),
        ("Patient/%zz", "malformed percent-encoding in the path"),
        ("Patient/%2", "malformed percent-encoding in the path"),
        ("Patient/..%2F", "encoded slashes are not allowed in the path"),
        ("Patient/a%5Cb", "encoded slashes are not allowed in the path"),
        ("Patient/a\\b", "backslashes are not allowed in the path"),
        ("http://evil/x", "absolute URLs are not allowed in the path"),
        ("Patient/@evil", "'@' and ':' are not allowed in the path"),
        ("http:evil", "'@' and ':' are not allowed in the path"),
        ("Patient/%FF", "path is not valid UTF-8"),
        ("Patient/%C3%A9", "path contains control, space or non-ASCII characters"),
        ("Patient/é", "path contains control, space or non-ASCII characters"),
    ],
)
def test_each_refusal_names_its_rule(raw, rule):
    with pytest.raises(InvalidRequest) as caught:
        parse(raw)
    assert caught.value.diagnostics == rule


def test_diagnostics_do_not_echo_the_path():
    with pytest.raises(InvalidRequest) as caught:
        parse("Patient/<script>evil-marker</script>")
    assert "evil-marker" not in caught.value.diagnostics


# --- row 48: CR, LF, NUL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "Patient/1%00",
        "Patient/1%0d%0aX-Injected:1",
        "Patient/1%0D%0AX-Injected:%201",
        "Patient/1\r\nX-Injected: 1",
        "Patient/1\x00",
        "Patient/1%09",
        "Patient/1%7F",
        "Patient/1%20",
        "Patient/1 2",
    ],
)
def test_row_48_control_characters_in_the_path_are_refused(raw):
    with pytest.raises(InvalidRequest):
        parse(raw)


# --- face_relative_path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url_path", "relative"),
    [
        ("/api/fhir/stu3", ""),
        ("/api/fhir/stu3/", ""),
        ("/api/fhir/stu3/Patient/1", "Patient/1"),
        ("/api/fhir/stu3/Patient/..%2Fx", "Patient/..%2Fx"),
        ("/API/FHIR/STU3/Patient", "Patient"),
    ],
)
def test_face_relative_path_is_the_raw_rest_after_the_face(url_path, relative):
    assert face_relative_path(url_path, "stu3") == relative


@pytest.mark.parametrize(
    "url_path",
    ["/api/fhir/r4/Patient", "/api/fhir/stu3x/Patient", "/fhir/stu3/Patient", "/api/fhir", ""],
)
def test_face_relative_path_outside_the_face_is_invalid(url_path):
    with pytest.raises(InvalidRequest):
        face_relative_path(url_path, "stu3")


def test_face_relative_path_honours_another_route_prefix():
    assert face_relative_path("/x/fhir/r4/Patient", "r4", route_prefix="x") == "Patient"


# --- upstream_url ------------------------------------------------------------------------------


def test_upstream_url_is_the_base_plus_the_segments():
    assert upstream_url(BASE, parse("Patient/123"), "") == f"{BASE}/Patient/123"


def test_upstream_url_of_the_base_interaction_is_the_base():
    assert upstream_url(BASE, parse(""), "") == BASE


def test_upstream_url_ignores_a_trailing_slash_on_the_base():
    assert upstream_url(BASE + "/", parse("Patient"), "") == f"{BASE}/Patient"


def test_upstream_url_appends_the_raw_query_byte_for_byte():
    query = "patient=123&category=vital-signs&_sort:desc=date&given=ruth%20ann&x=a+b"
    assert upstream_url(BASE, parse("Observation"), query) == f"{BASE}/Observation?{query}"


@pytest.mark.parametrize("query", ["a=1#frag", "a=\r\n", "a=1 2", "a=é"])
def test_upstream_url_refuses_a_query_that_is_not_plain_ascii(query):
    with pytest.raises(InvalidRequest):
        upstream_url(BASE, parse("Patient"), query)


@pytest.mark.parametrize(
    "segments",
    [("..", "x"), ("Patient", "."), ("...",), ("", "evil", "x"), ("http:", "", "evil")],
)
def test_upstream_url_refuses_a_path_that_would_leave_the_base(segments):
    # Last line of defence: a FhirPath that bypassed parse_fhir_path is still checked.
    forged = FhirPath(segments, None, None, "type")
    with pytest.raises(InvalidRequest):
        upstream_url("https://p.example", forged, "")


def test_upstream_url_encodes_characters_a_forged_segment_carries():
    forged = FhirPath(("a/b", "c?d", "e#f", "@evil", "h:", "%2e"), None, None, "type")
    assert upstream_url(BASE, forged, "") == f"{BASE}/a%2Fb/c%3Fd/e%23f/%40evil/h%3A/%252e"


# The alphabet of characters and tokens that have broken URL builders before.
DANGEROUS = st.sampled_from(
    [
        "Patient",
        "Observation",
        "1",
        "a-b.c",
        "_search",
        "_history",
        "$purge",
        ".",
        "..",
        "...",
        "/",
        "//",
        "\\",
        "@",
        ":",
        "?",
        "#",
        "%",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "%25",
        "%252e",
        "%252f",
        "%00",
        "%0d%0a",
        "%40",
        "%3a",
        "%3f",
        "%23",
        "http:",
        "https://evil",
        "evil.example",
        " ",
        "\t",
        "\r\n",
        "\x00",
        "é",
        "%C3%A9",
        "~",
        "+",
        ";",
        "=",
        "&",
    ]
)
# Segments built from id characters mixed with dangerous tokens, under a real resource type, so
# that many generated paths are accepted and the invariant is exercised, not just the refusals.
NEAR_VALID_SEGMENT = st.lists(
    st.sampled_from(["1", "a", "Z", "-", ".", "%2e", "%31", "%61", "_history", "%", "%2F", "@"]),
    min_size=1,
    max_size=4,
).map("".join)
RANDOM_PATHS = st.one_of(
    st.lists(DANGEROUS, min_size=1, max_size=8).map("".join),
    st.lists(st.one_of(DANGEROUS, st.text(alphabet="aP1./\\%@:?#", max_size=4)), max_size=6).map(
        "/".join
    ),
    st.tuples(
        st.sampled_from(["Patient", "Pati%65nt", "Observation"]),
        st.lists(NEAR_VALID_SEGMENT, max_size=3),
    ).map(lambda t: "/".join((t[0], *t[1]))),
)


@settings(max_examples=1500, deadline=None)
@given(raw=RANDOM_PATHS, base=st.sampled_from(BASES))
@example(raw="Patient/1", base=BASE)
@example(raw="Patient/_search", base=BASES[1])
def test_any_accepted_path_stays_under_the_provider_base(raw, base):
    try:
        path = parse(raw)
    except FhirError as refused:
        assert refused.status in (400, 404)
        return
    url = upstream_url(base, path, "")
    want, got = urlsplit(base.rstrip("/")), urlsplit(url)
    assert (got.scheme, got.hostname, got.port) == (want.scheme, want.hostname, want.port)
    assert got.netloc == want.netloc
    assert not got.query and not got.fragment
    if path.segments:
        assert got.path.startswith(want.path + "/")
        tail = got.path[len(want.path) + 1 :].split("/")
        assert tail == [s for s in path.segments]
        assert all(s not in ("", ".", "..") for s in tail)
    else:
        assert got.path == want.path


@settings(max_examples=300, deadline=None)
@given(raw=RANDOM_PATHS)
def test_any_url_path_under_the_face_is_accepted_only_in_the_grammar(raw):
    try:
        path = parse_url_path("/api/fhir/stu3/" + raw)
    except FhirError:
        return
    assert path.interaction in ("base", "type", "instance", "search-post", "history")
    assert path.resource_type is None or path.resource_type in STU3


# --- queries: the Patients app's calls pass untouched ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pairs"),
    [
        (
            "patient=123&category=vital-signs&_sort:desc=date",
            [("patient", "123"), ("category", "vital-signs"), ("_sort:desc", "date")],
        ),
        ("patient=123&_sort=-date", [("patient", "123"), ("_sort", "-date")]),
        ("family:contains=smi", [("family:contains", "smi")]),
        ("identifier=MRN123", [("identifier", "MRN123")]),
        (
            "patient=123&_sort:desc=date&_count=1",
            [("patient", "123"), ("_sort:desc", "date"), ("_count", "1")],
        ),
        ("patient=123&_count=0", [("patient", "123"), ("_count", "0")]),
        ("patient=123&_count=1000", [("patient", "123"), ("_count", "1000")]),
        ("family=a&family=b", [("family", "a"), ("family", "b")]),
        ("identifier=http%3A%2F%2Fx%7CMRN1", [("identifier", "http://x|MRN1")]),
        ("given=ruth+ann", [("given", "ruth ann")]),
        ("given=", [("given", "")]),
        ("_summary", [("_summary", "")]),
        ("subject.organization.name=x", [("subject.organization.name", "x")]),
        ("_include=Observation:patient", [("_include", "Observation:patient")]),
        (
            "_format=json&_format=application/fhir%2Bjson",
            [("_format", "json"), ("_format", "application/fhir+json")],
        ),
        ("_format=application/json+fhir", [("_format", "application/json fhir")]),
        ("a=1&&b=2&", [("a", "1"), ("b", "2")]),
        ("", []),
    ],
)
def test_real_queries_pass_and_decode_in_order(raw, pairs):
    assert validate_query(raw) == pairs


def test_the_query_itself_is_forwarded_untouched():
    raw = "patient=123&category=vital-signs&_sort:desc=date&family:contains=smi&_count=1"
    validate_query(raw)
    assert upstream_url(BASE, parse("Observation"), raw).endswith("?" + raw)


# --- row 48 and 61: query abuse ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "patient=1%00",
        "patient=1%0d%0aX-Injected:1",
        "patient=1%0AX",
        "x%0d%0a=1",
        "patient=1\r\nX-Injected: 1",
        "patient=1\x00",
    ],
)
def test_row_48_cr_lf_nul_in_the_query_are_refused(raw):
    with pytest.raises(InvalidRequest):
        validate_query(raw)


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("_include=*", "wildcard _include and _revinclude are not allowed"),
        ("_revinclude=*", "wildcard _include and _revinclude are not allowed"),
        ("_include:iterate=*", "wildcard _include and _revinclude are not allowed"),
        ("_include=Observation:*", "wildcard _include and _revinclude are not allowed"),
        ("_include=%2A", "wildcard _include and _revinclude are not allowed"),
        ("_has:Observation:patient:code=1234", "_has is not allowed"),
        ("_has=x", "_has is not allowed"),
        ("subject.organization.partof.name=x", "chained search parameter is too deep"),
        ("a.b.c.d.e.f=x", "chained search parameter is too deep"),
        ("_count=100000", "_count must be an integer from 0 to 1000"),
        ("_count=1001", "_count must be an integer from 0 to 1000"),
        ("_count=-1", "_count must be an integer from 0 to 1000"),
        ("_count=ten", "_count must be an integer from 0 to 1000"),
        ("_count=", "_count must be an integer from 0 to 1000"),
        ("_count=" + "9" * 5000, "_count must be an integer from 0 to 1000"),
        ("access_token=abc", "access tokens are not accepted in the query"),
        ("ACCESS_TOKEN=abc", "access tokens are not accepted in the query"),
        ("=x", "search parameter without a name"),
        ("a=%zz", "malformed percent-encoding in the query"),
        ("a=%FF", "query is not valid UTF-8"),
        ("a=1#x", "query contains characters that must be percent-encoded"),
        ("a=1 2", "query contains characters that must be percent-encoded"),
        ("a=é", "query contains characters that must be percent-encoded"),
    ],
)
def test_row_61_search_abuse_is_refused_with_400(raw, rule):
    with pytest.raises(InvalidRequest) as caught:
        validate_query(raw)
    assert caught.value.status == 400
    assert caught.value.diagnostics == rule


def test_row_61_too_many_parameters_are_refused():
    with pytest.raises(InvalidRequest) as caught:
        validate_query("&".join(["family=a"] * 500))
    assert caught.value.diagnostics == "too many search parameters"


def test_max_params_is_inclusive():
    assert len(validate_query("&".join(["a=1"] * 100))) == 100
    with pytest.raises(InvalidRequest):
        validate_query("&".join(["a=1"] * 101))


def test_a_chain_of_two_dots_is_allowed():
    assert validate_query("subject:Patient.organization.name=x") == [
        ("subject:Patient.organization.name", "x")
    ]


@pytest.mark.parametrize("value", ["xml", "application/fhir+xml", "text/html", "application/xml"])
def test_non_json_format_is_not_acceptable(value):
    with pytest.raises(FhirError) as caught:
        validate_query(f"_format={value}")
    assert (caught.value.status, caught.value.code) == (406, "not-supported")


# --- POST _search form bodies ------------------------------------------------------------------


def test_form_body_of_the_patients_app_search_is_parsed():
    assert parse_form_body(b"given=ruth&family=black&_count=10") == [
        ("given", "ruth"),
        ("family", "black"),
        ("_count", "10"),
    ]


def test_empty_form_body_has_no_parameters():
    assert parse_form_body(b"") == []


@pytest.mark.parametrize(
    "body",
    [b"family=\xc3\xa9", b"_include=*", b"family=a%0d%0aX:1", b"access_token=x", b"_count=5000"],
)
def test_form_body_follows_the_query_rules(body):
    with pytest.raises(InvalidRequest):
        parse_form_body(body)
