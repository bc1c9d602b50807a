"""Deterministic synthetic R4 patients for the sandbox: people, visits, vitals, problems, drugs.

Pure and repeatable. Patient *i* of seed *s* comes from a random generator seeded with (s, i)
only, so it is the same whether generated alone or in any batch, and every date is reckoned back
from ``REFERENCE_DATE`` (never the clock), so output is byte-identical across runs. Resources
refer to each other as "Type/id", with stable readable ids ("p-000123", "p-000123-obs-0007");
the shared Practitioners, Locations and Organizations they name come from ``generate_shared``.
Nothing here validates (``store.load`` does); the tests check every resource against R4 models.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from shared.sandbox import names, vocabulary
from shared.sandbox.vocabulary import Code

Resource = dict[str, Any]

REFERENCE_DATE = datetime(2026, 6, 1, tzinfo=UTC)
"""The generated world's "now": visits, diagnoses and ages are reckoned back from it."""

MRN_SYSTEM = "https://sandbox.ehr-bridge.example/mrn"
ORGANIZATION_SYSTEM = "https://sandbox.ehr-bridge.example/organization"
HISTORY = timedelta(days=3 * 365)  # how far back visits go
PRACTITIONER_COUNT = 12
HOSPITAL_ID = "org-hospital"


def generate_shared(seed: int = 0) -> list[Resource]:
    """The Organizations, Locations and Practitioners that generated patients refer to."""
    directory = _directory(seed)
    return [
        _hospital(),
        *(_payor_organization(payor) for payor in vocabulary.PAYORS),
        *_locations(),
        *(_practitioner(doctor) for doctor in directory.doctors),
    ]


def generate_patients(count: int, seed: int = 0, *, start: int = 0) -> Iterator[list[Resource]]:
    """Patients ``start`` .. ``start + count - 1``: per patient, the Patient then its resources."""
    if count < 0 or start < 0:
        raise ValueError("count and start must not be negative")
    directory = _directory(seed)
    for index in range(start, start + count):
        yield _PatientBuilder(seed, index, directory).build()


# -- the shared directory ------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """A reference to a shared resource, always with its display."""

    resource_type: str
    id: str
    display: str

    def json(self) -> dict[str, str]:
        """A FHIR Reference (a new dict each call)."""
        return {"reference": f"{self.resource_type}/{self.id}", "display": self.display}


@dataclass(frozen=True)
class _Doctor:
    """A shared Practitioner."""

    ref: _Ref
    given: str
    family: str
    gender: str
    npi: str


@dataclass(frozen=True)
class _Directory:
    """Everything shared that a patient may point at, for one seed."""

    doctors: tuple[_Doctor, ...]
    places: dict[str, tuple[_Ref, ...]]  # EncounterKind.place -> rooms, bays
    payors: tuple[tuple[vocabulary.Payor, _Ref], ...]


@lru_cache(maxsize=8)
def _directory(seed: int) -> _Directory:
    rng = random.Random(f"ehr-bridge-sandbox/{seed}/shared")  # noqa: S311 - test data
    doctors: list[_Doctor] = []
    displays: set[str] = set()
    while len(doctors) < PRACTITIONER_COUNT:
        gender = ("female", "male")[len(doctors) % 2]
        pool = names.FEMALE_GIVEN_NAMES if gender == "female" else names.MALE_GIVEN_NAMES
        given, family = rng.choice(pool), rng.choice(names.FAMILY_NAMES)
        display = f"Dr. {given} {family}"
        if display in displays:
            continue
        displays.add(display)
        ref = _Ref("Practitioner", f"prac-{len(doctors) + 1:02d}", display)
        doctors.append(_Doctor(ref, given, family, gender, _npi(rng)))
    return _Directory(
        doctors=tuple(doctors),
        places={
            "ward": tuple(_location_ref(room) for room, _ in _ward_rooms()),
            "clinic": tuple(_location_ref(room) for room in vocabulary.CLINIC_ROOMS),
            "emergency": tuple(_location_ref(bay) for bay in vocabulary.EMERGENCY_BAYS),
        },
        payors=tuple(
            (payor, _Ref("Organization", f"org-{payor.slug}", payor.name))
            for payor in vocabulary.PAYORS
        ),
    )


def _npi(rng: random.Random) -> str:
    """A ten-digit NPI-shaped number whose last digit is the NPI (Luhn, prefix 80840) check."""
    body = "1" + "".join(str(rng.randrange(10)) for _ in range(8))
    total = 0
    for position, char in enumerate(reversed("80840" + body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return f"{body}{(10 - total % 10) % 10}"


def _slug(name: str) -> str:
    return "-".join(name.lower().replace(",", " ").split())


def _location_ref(name: str) -> _Ref:
    return _Ref("Location", f"loc-{_slug(name)}", name)


def _ward_rooms() -> Iterator[tuple[str, str]]:
    """(room name, ward name) for every ward room."""
    for ward, rooms in vocabulary.WARDS:
        for room in range(1, rooms + 1):
            yield f"{ward}, Room {room}", ward


def _hospital_ref() -> dict[str, str]:
    return _Ref("Organization", HOSPITAL_ID, vocabulary.HOSPITAL_NAME).json()


def _hospital() -> Resource:
    return {
        "resourceType": "Organization",
        "id": HOSPITAL_ID,
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": "HOSP-0001"}],
        "active": True,
        "type": [vocabulary.PROVIDER_ORGANIZATION.concept()],
        "name": vocabulary.HOSPITAL_NAME,
        "telecom": [{"system": "phone", "value": "555-010-2000", "use": "work"}],
        "address": [
            {
                "line": ["1 Hospital Drive"],
                "city": "Springfield",
                "state": "MA",
                "postalCode": "01101",
                "country": "US",
            }
        ],
    }


def _payor_organization(payor: vocabulary.Payor) -> Resource:
    return {
        "resourceType": "Organization",
        "id": f"org-{payor.slug}",
        "identifier": [{"system": ORGANIZATION_SYSTEM, "value": f"PAYOR-{payor.prefix}"}],
        "active": True,
        "type": [vocabulary.PAYER_ORGANIZATION.concept()],
        "name": payor.name,
    }


def _location(name: str, physical_type: Code, part_of: str | None = None) -> Resource:
    ref = _location_ref(name)
    location: Resource = {
        "resourceType": "Location",
        "id": ref.id,
        "status": "active",
        "name": name,
        "mode": "instance",
        "physicalType": physical_type.concept(),
        "managingOrganization": _hospital_ref(),
    }
    if part_of is not None:
        location["partOf"] = _location_ref(part_of).json()
    return location


def _locations() -> Iterator[Resource]:
    for ward, _ in vocabulary.WARDS:
        yield _location(ward, vocabulary.WARD_TYPE)
    for room, ward in _ward_rooms():
        yield _location(room, vocabulary.ROOM_TYPE, part_of=ward)
    for room in vocabulary.CLINIC_ROOMS:
        yield _location(room, vocabulary.ROOM_TYPE)
    for bay in vocabulary.EMERGENCY_BAYS:
        yield _location(bay, vocabulary.BED_TYPE)


def _practitioner(doctor: _Doctor) -> Resource:
    return {
        "resourceType": "Practitioner",
        "id": doctor.ref.id,
        "identifier": [{"system": vocabulary.NPI, "value": doctor.npi}],
        "active": True,
        "name": [
            {"use": "official", "family": doctor.family, "given": [doctor.given], "prefix": ["Dr."]}
        ],
        "gender": doctor.gender,
        "qualification": [{"code": vocabulary.DOCTOR_OF_MEDICINE.concept("MD")}],
    }


# -- one patient ---------------------------------------------------------------------------

# Share of adult height reached by age (years), for children's heights.
_GROWTH = (
    (0, 0.29), (0.5, 0.39), (1, 0.44), (2, 0.505), (3, 0.555), (4, 0.595), (5, 0.635),
    (6, 0.67), (7, 0.705), (8, 0.735), (9, 0.765), (10, 0.79), (11, 0.82), (12, 0.85),
    (13, 0.885), (14, 0.92), (15, 0.95), (16, 0.97), (17, 0.985), (18, 1.0),
)  # fmt: skip
# Median body-mass index by age (years) for children.
_CHILD_BMI = (
    (0, 13.4), (0.5, 17.2), (1, 17.5), (2, 16.4), (3, 15.9), (4, 15.6), (5, 15.4), (6, 15.4),
    (7, 15.6), (8, 15.9), (9, 16.3), (10, 16.8), (11, 17.4), (12, 18.0), (13, 18.6),
    (14, 19.2), (15, 19.8), (16, 20.4), (17, 20.9), (18, 21.4),
)  # fmt: skip
# Mean heart and breathing rates, and their spread, by age band (years, upper bound).
_Norm = tuple[float, float, float]
_HEART_RATE: tuple[_Norm, ...] = (
    (1, 132, 12), (3, 118, 11), (6, 102, 10), (13, 88, 9), (18, 78, 9), (200, 73, 9),
)  # fmt: skip
_BREATHING: tuple[_Norm, ...] = (
    (1, 38, 4), (3, 28, 3), (6, 24, 2.5), (13, 20, 2), (18, 17, 2), (200, 15, 2),
)  # fmt: skip
# How many problems a patient has, by age band: weights of 0, 1, 2, 3, 4.
_PROBLEM_COUNTS = ((45, 35, 15, 5, 0), (35, 35, 20, 8, 2), (20, 30, 28, 15, 7), (8, 22, 30, 25, 15))
_ALLERGY_COUNTS = (60, 25, 10, 5)
_VISIT_KINDS = (vocabulary.AMBULATORY, vocabulary.EMERGENCY, vocabulary.INPATIENT)


def _interpolate(table: Sequence[tuple[float, float]], x: float) -> float:
    if x <= table[0][0]:
        return table[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(table):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return table[-1][1]


def _band(age: float) -> int:
    """Index of the age band (see vocabulary.AGE_BANDS) that ``age`` falls in."""
    return sum(age >= bound for bound in vocabulary.AGE_BANDS)


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass
class _Person:
    gender: str
    birth: date
    given: list[str]
    family: str
    prefix: str | None
    doctor: _Doctor

    def age_at(self, moment: datetime | date) -> float:
        day = moment.date() if isinstance(moment, datetime) else moment
        return (day - self.birth).days / 365.25

    @property
    def age(self) -> float:
        return self.age_at(REFERENCE_DATE)


@dataclass
class _Body:
    """What a patient's vital signs are drawn around, kept across visits for continuity."""

    adult_height: float
    adult_bmi: float
    drift: float = 1.0  # slow weight change, a random walk from visit to visit
    traits: set[str] = field(default_factory=set)


@dataclass
class _Visit:
    id: str
    kind: vocabulary.EncounterKind
    type: Code
    start: datetime
    end: datetime | None
    location: _Ref
    doctor: _Doctor
    reasons: list[Code] = field(default_factory=list)


@dataclass
class _Diagnosis:
    id: str
    problem: vocabulary.Problem
    onset: datetime
    recorded: datetime
    visit: _Visit | None
    doctor: _Doctor


class _PatientBuilder:
    """Draws one patient and its chart from a generator seeded with (seed, index) alone."""

    def __init__(self, seed: int, index: int, directory: _Directory) -> None:
        self.rng = random.Random(f"ehr-bridge-sandbox/{seed}/{index}")  # noqa: S311 - test data
        self.index = index
        self.id = f"p-{index:06d}"
        self.directory = directory
        self.observations = 0

    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.id}"}

    def build(self) -> list[Resource]:
        person = self._person()
        body = self._body(person)
        problems = self._problems(person, body)
        visits = self._visits(person)
        diagnoses = self._diagnoses(person, problems, visits)
        for diagnosis in diagnoses:
            body.traits |= diagnosis.problem.traits
        return [
            self._patient(person),
            *(self._encounter(visit) for visit in visits),
            *(obs for visit in visits for obs in self._vital_signs(person, body, visit)),
            *(self._condition(diagnosis) for diagnosis in diagnoses),
            *self._allergies(person),
            *self._medication_requests(diagnoses),
            self._coverage(person),
        ]

    # -- the person --------------------------------------------------------------------

    def _person(self) -> _Person:
        rng = self.rng
        gender = rng.choices(("male", "female", "other", "unknown"), (49, 49, 1, 1))[0]
        band = rng.choices(range(4), (18, 27, 32, 23))[0]
        if band == 3:
            age = int(rng.triangular(65, 101, 66))
        else:
            age = rng.randint(*((0, 17), (18, 39), (40, 64))[band])
        birth = REFERENCE_DATE.date() - timedelta(days=int(age * 365.25) + rng.randint(20, 364))
        pool = {
            "male": names.MALE_GIVEN_NAMES,
            "female": names.FEMALE_GIVEN_NAMES,
        }.get(gender, names.NEUTRAL_GIVEN_NAMES)
        given = [rng.choice(pool)]
        if rng.random() < 0.35:
            second = rng.choice(pool)
            if second != given[0]:
                given.append(second)
        family = rng.choice(names.FAMILY_NAMES)
        if rng.random() < 0.03:
            family = f"{family}-{rng.choice(names.FAMILY_NAMES)}"
        return _Person(
            gender=gender,
            birth=birth,
            given=given,
            family=family,
            prefix=self._prefix(gender, age),
            doctor=rng.choice(self.directory.doctors),
        )

    def _prefix(self, gender: str, age: int) -> str | None:
        if age < 18:
            return None
        if age >= 28 and self.rng.random() < 0.04:
            return "Dr."
        if gender == "male":
            return "Mr."
        if gender == "female":
            return "Mrs." if age >= 25 and self.rng.random() < 0.5 else "Ms."
        return "Mx."

    def _names(self, person: _Person) -> list[Resource]:
        official: Resource = {"use": "official", "family": person.family, "given": person.given}
        if person.prefix:
            official["prefix"] = [person.prefix]
        result = [official]
        nickname = names.NICKNAMES.get(person.given[0])
        if person.prefix == "Mrs." and self.rng.random() < 0.5:
            maiden = self.rng.choice(names.FAMILY_NAMES)
            result.append({"use": "maiden", "family": maiden, "given": list(person.given)})
        elif nickname and self.rng.random() < 0.4:
            result.append({"use": "nickname", "given": [nickname]})
        return result

    def _patient(self, person: _Person) -> Resource:
        rng = self.rng
        city, state, zip3 = rng.choice(names.CITIES)
        line = [f"{rng.randint(1, 9999)} {rng.choice(names.STREET_NAMES)}"]
        if rng.random() < 0.25:
            line.append(f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}")
        return {
            "resourceType": "Patient",
            "id": self.id,
            "identifier": [
                {
                    "use": "usual",
                    "type": vocabulary.MEDICAL_RECORD_NUMBER.concept(),
                    "system": MRN_SYSTEM,
                    "value": f"MRN-{self.index:06d}",
                }
            ],
            "active": True,
            "name": self._names(person),
            "telecom": [
                {
                    "system": "phone",
                    "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                    "use": rng.choice(("home", "mobile")),
                }
            ],
            "gender": person.gender,
            "birthDate": person.birth.isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": line,
                    "city": city,
                    "state": state,
                    "postalCode": f"{zip3}{rng.randint(10, 99)}",
                    "country": "US",
                }
            ],
            "generalPractitioner": [person.doctor.ref.json()],
            "managingOrganization": _hospital_ref(),
        }

    def _body(self, person: _Person) -> _Body:
        rng = self.rng
        mean, spread = {"male": (176.0, 7.0), "female": (163.0, 6.5)}.get(person.gender, (170, 8))
        return _Body(
            adult_height=_clamp(rng.gauss(mean, spread), 145, 205),
            adult_bmi=_clamp(rng.gauss(26.5, 4.5), 17.5, 45),
        )

    # -- visits ------------------------------------------------------------------------

    def _visits(self, person: _Person) -> list[_Visit]:
        """2–4 visits spread over the last few years (never before birth), oldest first."""
        rng = self.rng
        birth = datetime.combine(person.birth, time(), UTC)
        first = max(birth + timedelta(days=1), REFERENCE_DATE - HISTORY)
        count = rng.choice((2, 3, 3, 4))
        slot = (REFERENCE_DATE - first) / count
        visits = []
        for number in range(count):
            slot_start = first + slot * number
            slot_end = slot_start + slot
            latest = number == count - 1
            kind = rng.choices(_VISIT_KINDS, (55, 15, 30) if latest else (72, 14, 14))[0]
            end: datetime | None
            if latest and kind is vocabulary.INPATIENT and rng.random() < 0.6:
                # Still admitted: the Patients app shows this ward room as where they are.
                ago = timedelta(minutes=rng.randint(6 * 60, 6 * 24 * 60))
                start = max(slot_start + timedelta(hours=1), REFERENCE_DATE - ago)
                end = None
            else:
                start = slot_start + slot * (rng.random() * 0.5)
                if kind is vocabulary.AMBULATORY:  # clinics run 08:00-17:00
                    clock = time(rng.randint(8, 16), rng.choice((0, 15, 30, 45)))
                    start = datetime.combine(start.date(), clock, UTC)
                    if start < slot_start:
                        start += timedelta(days=1)
                start = start.replace(second=0, microsecond=0)
                length = timedelta(minutes=rng.randint(*kind.minutes))
                end = min(start + length, slot_end - timedelta(minutes=30))
            is_clinic = kind is vocabulary.AMBULATORY
            visits.append(
                _Visit(
                    id=f"{self.id}-enc-{number + 1}",
                    kind=kind,
                    type=rng.choice(kind.types),
                    start=start,
                    end=end,
                    location=rng.choice(self.directory.places[kind.place]),
                    doctor=person.doctor
                    if is_clinic and rng.random() < 0.7
                    else rng.choice(self.directory.doctors),
                )
            )
        return visits

    def _encounter(self, visit: _Visit) -> Resource:
        period = {"start": _instant(visit.start)}
        if visit.end is not None:
            period["end"] = _instant(visit.end)
        encounter: Resource = {
            "resourceType": "Encounter",
            "id": visit.id,
            "status": "finished" if visit.end is not None else "in-progress",
            "class": visit.kind.act.coding(),
            "type": [visit.type.concept()],
            "subject": self.subject(),
            "participant": [
                {
                    "type": [{"coding": [vocabulary.ATTENDER.coding()]}],
                    "individual": visit.doctor.ref.json(),
                }
            ],
            "period": period,
            "location": [
                {
                    "location": visit.location.json(),
                    "status": "completed" if visit.end is not None else "active",
                }
            ],
            "serviceProvider": _hospital_ref(),
        }
        if visit.reasons:
            encounter["reasonCode"] = [reason.concept() for reason in visit.reasons]
        return encounter

    # -- vital signs -------------------------------------------------------------------

    def _vital_signs(self, person: _Person, body: _Body, visit: _Visit) -> list[Resource]:
        """One set of vitals, taken in the first minutes of the visit."""
        rng = self.rng
        age = person.age_at(visit.start)
        taken = _instant(visit.start + timedelta(minutes=rng.randint(1, 12)))
        emergency = visit.kind is vocabulary.EMERGENCY
        lungs = "lungs" in body.traits

        height = body.adult_height * _interpolate(_GROWTH, age)
        if age > 60:
            height -= 0.15 * (age - 60)
        height = round(height + rng.gauss(0, 0.3), 1)
        if age < 18:
            bmi = _interpolate(_CHILD_BMI, age) * _clamp(body.adult_bmi / 25, 0.8, 1.5)
        else:
            bmi = body.adult_bmi + 0.05 * (min(age, 70) - 45)
        body.drift = _clamp(body.drift * rng.gauss(1.0, 0.015), 0.9, 1.1)
        weight = round(bmi * (height / 100) ** 2 * body.drift, 1)

        _, mean, spread = next(row for row in _HEART_RATE if age < row[0])
        heart = _clamp(rng.gauss(mean + (10 if emergency else 0), spread), mean - 30, mean + 40)
        _, mean, spread = next(row for row in _BREATHING if age < row[0])
        breathing = _clamp(rng.gauss(mean + (2 if lungs else 0), spread), mean - 6, mean + 12)
        if emergency and rng.random() < 0.25:
            temperature = rng.uniform(38.0, 39.6)
        else:
            temperature = _clamp(rng.gauss(36.8, 0.25), 36.0, 37.6)
        saturation = (
            _clamp(rng.gauss(93, 2), 87, 97) if lungs else _clamp(rng.gauss(98, 1), 94, 100)
        )

        observations = [
            self._observation("heart_rate", heart, visit, taken),
            self._observation("respiratory_rate", breathing, visit, taken),
            self._observation("temperature", temperature, visit, taken),
            self._observation("oxygen_saturation", saturation, visit, taken),
            self._observation("weight", weight, visit, taken),
            self._observation("height", height, visit, taken),
        ]
        if age >= 2:  # BMI and blood pressure are not routine for infants
            observations.append(
                self._observation("bmi", weight / (height / 100) ** 2, visit, taken)
            )
        if age >= 3:
            observations.append(self._blood_pressure(age, body, visit, taken))
        return observations

    def _observation_base(self, code: Resource, visit: _Visit, taken: str) -> Resource:
        self.observations += 1
        return {
            "resourceType": "Observation",
            "id": f"{self.id}-obs-{self.observations:04d}",
            "status": "final",
            "category": [vocabulary.VITAL_SIGNS_CATEGORY.concept()],
            "code": code,
            "subject": self.subject(),
            "encounter": {"reference": f"Encounter/{visit.id}"},
            "effectiveDateTime": taken,
        }

    def _observation(self, key: str, value: float, visit: _Visit, taken: str) -> Resource:
        vital = vocabulary.VITALS[key]
        code = {
            "coding": [coding.coding() for coding in vital.codes],
            "text": vital.codes[0].display,
        }
        observation = self._observation_base(code, visit, taken)
        observation["valueQuantity"] = vital.quantity(value)
        return observation

    def _blood_pressure(self, age: float, body: _Body, visit: _Visit, taken: str) -> Resource:
        rng = self.rng
        high = "hypertension" in body.traits
        if age < 13:
            systolic, diastolic = rng.gauss(100 + age, 7), rng.gauss(62 + age / 2, 6)
        elif age < 18:
            systolic, diastolic = rng.gauss(112, 9), rng.gauss(68, 7)
        else:
            older = max(0.0, age - 30)
            systolic = rng.gauss(114 + 0.35 * older + (18 if high else 0), 11)
            diastolic = rng.gauss(74 + min(0.1 * older, 5) + (9 if high else 0), 8)
        systolic = _clamp(systolic, 80, 200)
        diastolic = _clamp(diastolic, 45, min(120, systolic - 20))
        panel = vocabulary.BLOOD_PRESSURE_PANEL
        observation = self._observation_base(
            {"coding": [panel.coding()], "text": "Blood pressure"}, visit, taken
        )
        observation["component"] = [
            {
                "code": vocabulary.VITALS[key].codes[0].concept(),
                "valueQuantity": vocabulary.VITALS[key].quantity(value),
            }
            for key, value in (("systolic", systolic), ("diastolic", diastolic))
        ]
        return observation

    # -- problems ----------------------------------------------------------------------

    def _problems(self, person: _Person, body: _Body) -> list[vocabulary.Problem]:
        rng = self.rng
        band = _band(person.age)
        count = rng.choices(range(5), _PROBLEM_COUNTS[band])[0]
        candidates = [problem for problem in vocabulary.PROBLEMS if problem.weights[band] > 0]
        chosen: list[vocabulary.Problem] = []
        if person.age >= 18 and body.adult_bmi >= 30.5:
            chosen.append(vocabulary.OBESITY)
        while len(chosen) < count and candidates:
            problem = rng.choices(candidates, [p.weights[band] for p in candidates])[0]
            candidates.remove(problem)
            chosen.append(problem)
        return chosen[:4]

    def _diagnoses(
        self, person: _Person, problems: list[vocabulary.Problem], visits: list[_Visit]
    ) -> list[_Diagnosis]:
        """When each problem started and was recorded; short illnesses belong to a visit."""
        rng = self.rng
        birth = datetime.combine(person.birth, time(), UTC)
        diagnoses = []
        for number, problem in enumerate(problems, start=1):
            visit: _Visit | None = None
            if problem.chronic:
                # Obesity is never drawn (all weights 0) and only given to adults.
                first_band = next((b for b, w in enumerate(problem.weights) if w > 0), 1)
                earliest = max(
                    birth + timedelta(days=30),
                    birth + timedelta(days=365.25 * (0, *vocabulary.AGE_BANDS)[first_band]),
                    REFERENCE_DATE - timedelta(days=25 * 365),
                )
                latest = max(earliest, visits[-1].start)
                onset = earliest + (latest - earliest) * rng.random()
                onset = onset.replace(minute=0, second=0, microsecond=0)
                recorded = min(onset + timedelta(days=rng.randint(0, 45)), REFERENCE_DATE)
                doctor = person.doctor
            else:
                visit = rng.choice(visits)
                visit.reasons.append(problem.code)
                if visit.kind is vocabulary.AMBULATORY:
                    visit.type = vocabulary.AMBULATORY.types[1]  # "Encounter for problem"
                onset = recorded = visit.start
                doctor = visit.doctor
            diagnoses.append(
                _Diagnosis(f"{self.id}-cond-{number}", problem, onset, recorded, visit, doctor)
            )
        return diagnoses

    def _condition(self, diagnosis: _Diagnosis) -> Resource:
        rng = self.rng
        problem = diagnosis.problem
        severity = rng.choices(
            vocabulary.SEVERITIES, (45, 40, 15) if problem.chronic else (50, 40, 10)
        )[0]
        condition: Resource = {
            "resourceType": "Condition",
            "id": diagnosis.id,
            "clinicalStatus": vocabulary.CONDITION_ACTIVE.coded(),
            "verificationStatus": vocabulary.CONDITION_CONFIRMED.coded(),
            "category": [vocabulary.PROBLEM_LIST_ITEM.coded()],
            "severity": severity.concept(),
            "code": problem.code.concept(),
            "subject": self.subject(),
            "onsetDateTime": _instant(diagnosis.onset),
            "recordedDate": _instant(diagnosis.recorded),
            "recorder": diagnosis.doctor.ref.json(),
        }
        if diagnosis.visit is not None:
            condition["encounter"] = {"reference": f"Encounter/{diagnosis.visit.id}"}
            healed = diagnosis.onset + timedelta(days=rng.randint(5, 20))
            if healed < REFERENCE_DATE:
                condition["clinicalStatus"] = vocabulary.CONDITION_RESOLVED.coded()
                condition["abatementDateTime"] = _instant(healed)
        return condition

    # -- allergies ---------------------------------------------------------------------

    def _allergies(self, person: _Person) -> list[Resource]:
        rng = self.rng
        count = rng.choices(range(4), _ALLERGY_COUNTS)[0]
        birth = datetime.combine(person.birth, time(), UTC)
        allergies = []
        for number, allergen in enumerate(rng.sample(vocabulary.ALLERGENS, count), start=1):
            reactions = rng.sample(
                allergen.reactions, rng.randint(1, min(2, len(allergen.reactions)))
            )
            severe = vocabulary.ANAPHYLAXIS in reactions
            criticality = (
                "high"
                if severe
                else rng.choices(("low", "high", "unable-to-assess"), (70, 20, 10))[0]
            )
            status = rng.choices(("active", "inactive"), (90, 10))[0]
            verification = rng.choices(("confirmed", "unconfirmed"), (85, 15))[0]
            recorded = (
                birth
                + timedelta(days=30)
                + (REFERENCE_DATE - birth - timedelta(days=30)) * rng.random()
            )
            substance = {"coding": [allergen.code.coding()], "text": allergen.text}
            allergies.append(
                {
                    "resourceType": "AllergyIntolerance",
                    "id": f"{self.id}-allergy-{number}",
                    "clinicalStatus": vocabulary.ALLERGY_STATUSES[status].coded(),
                    "verificationStatus": vocabulary.ALLERGY_VERIFICATIONS[verification].coded(),
                    "type": allergen.kind,
                    "category": [allergen.category],
                    "criticality": criticality,
                    "code": substance,
                    "patient": self.subject(),
                    "recordedDate": _instant(recorded.replace(second=0, microsecond=0)),
                    "recorder": person.doctor.ref.json(),
                    "reaction": [
                        {
                            "substance": {
                                "coding": [allergen.code.coding()],
                                "text": allergen.text,
                            },
                            "manifestation": [reaction.concept() for reaction in reactions],
                            "severity": "severe" if severe else rng.choice(("mild", "moderate")),
                        }
                    ],
                    "note": [{"text": _allergy_note(allergen, reactions, criticality)}],
                }
            )
        return allergies

    # -- medications -------------------------------------------------------------------

    def _medication_requests(self, diagnoses: list[_Diagnosis]) -> list[Resource]:
        rng = self.rng
        orders: list[tuple[_Diagnosis, vocabulary.Medication]] = []
        for diagnosis in diagnoses:
            options = diagnosis.problem.medications
            if not options or rng.random() < 0.2:
                continue
            many = len(options) > 1 and rng.random() < 0.25
            orders += [
                (diagnosis, medication) for medication in rng.sample(options, 2 if many else 1)
            ]
        return [
            self._medication_request(number, diagnosis, medication)
            for number, (diagnosis, medication) in enumerate(orders[:4], start=1)
        ]

    def _medication_request(
        self, number: int, diagnosis: _Diagnosis, medication: vocabulary.Medication
    ) -> Resource:
        rng = self.rng
        visit = diagnosis.visit
        if visit is not None:  # prescribed at the visit that found the illness
            authored, doctor = visit.start, visit.doctor
        else:  # a long-term prescription, renewed within the last year
            renewed = REFERENCE_DATE - timedelta(days=rng.randint(7, 330), hours=rng.randint(0, 9))
            authored, doctor = max(diagnosis.recorded, renewed), diagnosis.doctor
        authored = authored.replace(minute=0, second=0, microsecond=0)
        ends = authored + timedelta(days=medication.course_days or 365)
        request: Resource = {
            "resourceType": "MedicationRequest",
            "id": f"{self.id}-med-{number}",
            "status": "completed" if ends < REFERENCE_DATE else "active",
            "intent": "order",
            "medicationCodeableConcept": medication.code.concept(),
            "subject": self.subject(),
            "authoredOn": _instant(authored),
            "requester": doctor.ref.json(),
            "reasonReference": [
                {
                    "reference": f"Condition/{diagnosis.id}",
                    "display": diagnosis.problem.code.display,
                }
            ],
            "dosageInstruction": [{"sequence": 1, "text": medication.dosage}],
            "dispenseRequest": {
                "validityPeriod": {
                    "start": authored.date().isoformat(),
                    "end": ends.date().isoformat(),
                },
                "numberOfRepeatsAllowed": 0 if medication.course_days else rng.randint(1, 11),
            },
        }
        if visit is not None:
            request["encounter"] = {"reference": f"Encounter/{visit.id}"}
        return request

    # -- coverage ----------------------------------------------------------------------

    def _coverage(self, person: _Person) -> Resource:
        rng = self.rng
        age = person.age
        if age >= 65 and rng.random() < 0.8:
            audience = "senior"
        elif rng.random() < (0.3 if age < 18 else 0.12):
            audience = "public"
        else:
            audience = "commercial"
        payor, payor_ref = rng.choice(
            [pair for pair in self.directory.payors if pair[0].audience == audience]
        )
        plan_value, plan_name = rng.choice(payor.plans)
        group_value, group_name = rng.choice(payor.groups)
        subscriber_id = f"{payor.prefix}{rng.randint(10**8, 10**9 - 1)}"
        since = max(date(REFERENCE_DATE.year - rng.randint(0, 6), 1, 1), person.birth)
        return {
            "resourceType": "Coverage",
            "id": f"{self.id}-coverage",
            "status": "active",
            "type": payor.policy.concept(),
            "subscriber": self.subject(),
            "subscriberId": subscriber_id,
            "beneficiary": self.subject(),
            "relationship": vocabulary.SELF.concept(),
            "period": {"start": since.isoformat(), "end": f"{REFERENCE_DATE.year}-12-31"},
            "payor": [payor_ref.json()],
            "class": [
                {
                    "type": vocabulary.GROUP_CLASS.concept(),
                    "value": group_value,
                    "name": group_name,
                },
                {"type": vocabulary.PLAN_CLASS.concept(), "value": plan_value, "name": plan_name},
            ],
        }


def _allergy_note(allergen: vocabulary.Allergen, reactions: list[Code], criticality: str) -> str:
    """A clinician's note: what happened and what to do about it."""
    what = " and ".join(reaction.display.lower() for reaction in reactions)
    happened = f"{what.capitalize()} after exposure to {allergen.text.lower()}."
    if allergen.category == "medication":
        advice = (
            "Do not prescribe; use an alternative."
            if criticality == "high"
            else "Avoid if possible."
        )
    elif criticality == "high":
        advice = "Carries an epinephrine auto-injector."
    else:
        advice = "Avoid exposure; antihistamines as needed."
    return f"{happened} {advice}"
