"""Clinical vocabulary of the synthetic sandbox: codes, their displays and how they go together.

Codes are real SNOMED CT, LOINC, RxNorm and HL7 terminology codes (most as Synthea uses them),
so the data reads like a real chart in the Patients app. Which problems, drugs and allergies a
patient gets, and how often, is decided in ``generate``; this module only says what exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
LOCATION_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V2_0360 = "http://terminology.hl7.org/CodeSystem/v2-0360"

# Age bands of ``weights`` tuples below: child (<18), 18–39, 40–64, 65 and over.
AGE_BANDS = (18, 40, 65)


@dataclass(frozen=True)
class Code:
    """One coded concept: system, code and the display a clinician would read."""

    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        """This concept as a FHIR Coding (a new dict each call)."""
        return {"system": self.system, "code": self.code, "display": self.display}

    def concept(self, text: str | None = None) -> dict[str, Any]:
        """This concept as a FHIR CodeableConcept whose text is ``text`` or the display."""
        return {"coding": [self.coding()], "text": text or self.display}

    def coded(self) -> dict[str, Any]:
        """This concept as a FHIR CodeableConcept of the coding alone (for status codes)."""
        return {"coding": [self.coding()]}


def sct(code: str, display: str) -> Code:
    """A SNOMED CT concept."""
    return Code(SNOMED, code, display)


def rx(code: str, display: str) -> Code:
    """An RxNorm concept."""
    return Code(RXNORM, code, display)


# -- vital signs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Vital:
    """A vital sign: its LOINC codings (the first is the primary one) and its UCUM unit."""

    key: str
    codes: tuple[Code, ...]
    unit: str
    ucum: str
    decimals: int

    def quantity(self, value: float) -> dict[str, Any]:
        """A UCUM Quantity of ``value`` rounded to this sign's precision."""
        number: float | int = round(value, self.decimals) if self.decimals else round(value)
        return {"value": number, "unit": self.unit, "system": UCUM, "code": self.ucum}


VITALS: dict[str, Vital] = {
    vital.key: vital
    for vital in (
        Vital("heart_rate", (Code(LOINC, "8867-4", "Heart rate"),), "beats/minute", "/min", 0),
        Vital(
            "respiratory_rate",
            (Code(LOINC, "9279-1", "Respiratory rate"),),
            "breaths/minute",
            "/min",
            0,
        ),
        Vital("temperature", (Code(LOINC, "8310-5", "Body temperature"),), "°C", "Cel", 1),
        Vital(
            "oxygen_saturation",
            (
                Code(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
                Code(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            ),
            "%",
            "%",
            0,
        ),
        Vital("weight", (Code(LOINC, "29463-7", "Body weight"),), "kg", "kg", 1),
        Vital("height", (Code(LOINC, "8302-2", "Body height"),), "cm", "cm", 1),
        Vital(
            "bmi", (Code(LOINC, "39156-5", "Body mass index (BMI) [Ratio]"),), "kg/m2", "kg/m2", 1
        ),
        Vital("systolic", (Code(LOINC, "8480-6", "Systolic blood pressure"),), "mmHg", "mm[Hg]", 0),
        Vital(
            "diastolic", (Code(LOINC, "8462-4", "Diastolic blood pressure"),), "mmHg", "mm[Hg]", 0
        ),
    )
}
BLOOD_PRESSURE_PANEL = Code(LOINC, "85354-9", "Blood pressure panel with all children optional")
VITAL_SIGNS_CATEGORY = Code(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")

# -- encounters and places -----------------------------------------------------------------


@dataclass(frozen=True)
class EncounterKind:
    """A class of encounter (v3 ActCode), the visit types it takes and how long it lasts."""

    act: Code
    types: tuple[Code, ...]
    minutes: tuple[int, int]
    place: str  # "clinic", "ward" or "emergency": where in the hospital it happens


AMBULATORY = EncounterKind(
    Code(V3_ACT_CODE, "AMB", "ambulatory"),
    (
        sct("185349003", "Encounter for check up"),
        sct("185347001", "Encounter for problem"),
        sct("185345009", "Encounter for symptom"),
        sct("390906007", "Follow-up encounter"),
    ),
    (15, 60),
    "clinic",
)
EMERGENCY = EncounterKind(
    Code(V3_ACT_CODE, "EMER", "emergency"),
    (
        sct("50849002", "Emergency room admission"),
        sct("4525004", "Emergency department patient visit"),
    ),
    (120, 480),
    "emergency",
)
INPATIENT = EncounterKind(
    Code(V3_ACT_CODE, "IMP", "inpatient encounter"),
    (
        sct("32485007", "Hospital admission"),
        sct("183452005", "Emergency hospital admission"),
        sct("305408004", "Admission to surgical department"),
    ),
    (24 * 60, 7 * 24 * 60),
    "ward",
)
ATTENDER = Code(PARTICIPATION_TYPE, "ATND", "attender")

HOSPITAL_NAME = "Contoso General Hospital"
# Ward name -> number of rooms; every room is a Location, part of its ward's Location.
WARDS: tuple[tuple[str, int], ...] = (
    ("Ward 4B", 14),
    ("Ward 5A", 12),
    ("Ward 6C", 10),
    ("Cardiac Care Unit", 8),
)
CLINIC_ROOMS: tuple[str, ...] = tuple(
    f"Outpatient Clinic {clinic}, Room {room}" for clinic in "ABC" for room in range(1, 5)
)
EMERGENCY_BAYS: tuple[str, ...] = tuple(f"Emergency Department, Bay {bay}" for bay in range(1, 9))
WARD_TYPE = Code(LOCATION_PHYSICAL_TYPE, "wa", "Ward")
ROOM_TYPE = Code(LOCATION_PHYSICAL_TYPE, "ro", "Room")
BED_TYPE = Code(LOCATION_PHYSICAL_TYPE, "bd", "Bed")
PROVIDER_ORGANIZATION = Code(ORGANIZATION_TYPE, "prov", "Healthcare Provider")
PAYER_ORGANIZATION = Code(ORGANIZATION_TYPE, "pay", "Payer")
DOCTOR_OF_MEDICINE = Code(V2_0360, "MD", "Doctor of Medicine")
MEDICAL_RECORD_NUMBER = Code(V2_0203, "MR", "Medical record number")

# -- problems and medications --------------------------------------------------------------


@dataclass(frozen=True)
class Medication:
    """A drug as prescribed: RxNorm product, dosage text, and course length if not ongoing."""

    code: Code
    dosage: str
    course_days: int | None = None  # None: a long-term medication, renewed yearly


@dataclass(frozen=True)
class Problem:
    """A condition a patient may have, how likely per age band, and what treats it."""

    code: Code
    weights: tuple[float, float, float, float]
    chronic: bool
    medications: tuple[Medication, ...] = ()
    traits: frozenset[str] = frozenset()  # effects on vital signs: "hypertension", "lungs"


LISINOPRIL = Medication(
    rx("314076", "lisinopril 10 MG Oral Tablet"), "1 tablet by mouth once daily"
)
AMLODIPINE = Medication(rx("197361", "amlodipine 5 MG Oral Tablet"), "1 tablet by mouth once daily")
HYDROCHLOROTHIAZIDE = Medication(
    rx("310798", "hydrochlorothiazide 25 MG Oral Tablet"), "1 tablet by mouth every morning"
)
METFORMIN = Medication(
    rx("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    "1 tablet by mouth twice daily with meals",
)
ALBUTEROL = Medication(
    rx("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "2 puffs inhaled every 4 to 6 hours as needed for wheezing",
)
FLUTICASONE = Medication(
    rx("895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    "2 puffs inhaled twice daily; rinse mouth after use",
)
ATORVASTATIN = Medication(
    rx("259255", "atorvastatin 80 MG Oral Tablet"), "1 tablet by mouth once daily at bedtime"
)
SIMVASTATIN = Medication(
    rx("312961", "simvastatin 20 MG Oral Tablet"), "1 tablet by mouth once daily in the evening"
)
METOPROLOL = Medication(
    rx("866412", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet"),
    "1 tablet by mouth once daily",
)
WARFARIN = Medication(
    rx("855332", "warfarin sodium 5 MG Oral Tablet"),
    "1 tablet by mouth once daily in the evening, dose per INR",
)
LEVOTHYROXINE = Medication(
    rx("966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
    "1 tablet by mouth every morning on an empty stomach",
)
FLUOXETINE = Medication(rx("310385", "fluoxetine 20 MG Oral Capsule"), "1 capsule by mouth daily")
LORATADINE = Medication(
    rx("311372", "loratadine 10 MG Oral Tablet"), "1 tablet by mouth once daily as needed"
)
HYDROCORTISONE_CREAM = Medication(
    rx("106258", "hydrocortisone 10 MG/ML Topical Cream"),
    "Apply a thin layer to affected skin twice daily",
    14,
)
PENICILLIN_V = Medication(
    rx("834060", "penicillin V potassium 250 MG Oral Tablet"),
    "1 tablet by mouth four times daily for 10 days",
    10,
)
ACETAMINOPHEN = Medication(
    rx("313782", "acetaminophen 325 MG Oral Tablet"),
    "2 tablets by mouth every 6 hours as needed for pain or fever",
    7,
)
IBUPROFEN = Medication(
    rx("310965", "ibuprofen 200 MG Oral Tablet"),
    "1 to 2 tablets by mouth every 6 to 8 hours as needed with food",
    10,
)
FERROUS_SULFATE = Medication(
    rx("310325", "ferrous sulfate 325 MG Oral Tablet"), "1 tablet by mouth once daily"
)

OBESITY = Problem(
    sct("162864005", "Body mass index 30+ - obesity"), (0, 0, 0, 0), chronic=True
)  # given from the measured BMI, never drawn at random
PROBLEMS: tuple[Problem, ...] = (
    Problem(
        sct("38341003", "Hypertension"),
        (0, 1.5, 6, 10),
        True,
        (LISINOPRIL, AMLODIPINE, HYDROCHLOROTHIAZIDE),
        frozenset({"hypertension"}),
    ),
    Problem(sct("44054006", "Type 2 diabetes mellitus"), (0, 0.8, 3.5, 5), True, (METFORMIN,)),
    Problem(sct("15777000", "Prediabetes"), (0.2, 1.5, 3, 3), True),
    Problem(
        sct("195967001", "Asthma"),
        (4, 2.5, 2, 1.5),
        True,
        (ALBUTEROL, FLUTICASONE),
        frozenset({"lungs"}),
    ),
    Problem(
        sct("13645005", "Chronic obstructive lung disease"),
        (0, 0, 1.5, 3),
        True,
        (ALBUTEROL, FLUTICASONE),
        frozenset({"lungs"}),
    ),
    Problem(sct("55822004", "Hyperlipidemia"), (0, 1, 4, 5), True, (ATORVASTATIN, SIMVASTATIN)),
    Problem(sct("49436004", "Atrial fibrillation"), (0, 0, 0.6, 2.5), True, (WARFARIN, METOPROLOL)),
    Problem(sct("53741008", "Coronary heart disease"), (0, 0, 1, 3), True, (ATORVASTATIN,)),
    Problem(
        sct("88805009", "Chronic congestive heart failure"), (0, 0, 0.4, 1.8), True, (METOPROLOL,)
    ),
    Problem(sct("433144002", "Chronic kidney disease stage 3"), (0, 0, 0.6, 2), True),
    Problem(sct("40930008", "Hypothyroidism"), (0.2, 1, 1.5, 1.5), True, (LEVOTHYROXINE,)),
    Problem(sct("370143000", "Major depressive disorder"), (0.4, 2, 1.5, 1), True, (FLUOXETINE,)),
    Problem(sct("197480006", "Anxiety disorder"), (0.6, 2, 1.5, 0.8), True),
    Problem(sct("37796009", "Migraine"), (0.5, 2, 1.2, 0.3), True, (IBUPROFEN,)),
    Problem(sct("69896004", "Rheumatoid arthritis"), (0, 0.3, 0.8, 0.8), True),
    Problem(sct("239873007", "Osteoarthritis of knee"), (0, 0.2, 1.8, 3), True, (ACETAMINOPHEN,)),
    Problem(
        sct("232353008", "Perennial allergic rhinitis with seasonal variation"),
        (2, 2, 1, 0.5),
        True,
        (LORATADINE,),
    ),
    Problem(
        sct("24079001", "Atopic dermatitis"), (2.5, 0.6, 0.3, 0.2), False, (HYDROCORTISONE_CREAM,)
    ),
    Problem(sct("271737000", "Anemia"), (0.5, 1, 1, 1.5), True, (FERROUS_SULFATE,)),
    Problem(sct("40055000", "Chronic sinusitis"), (0.5, 1, 1, 0.8), True),
    Problem(sct("444814009", "Viral sinusitis"), (3, 2, 1.5, 1), False, (ACETAMINOPHEN,)),
    Problem(sct("10509002", "Acute bronchitis"), (2.5, 1.5, 1.5, 1.5), False, (ACETAMINOPHEN,)),
    Problem(sct("43878008", "Streptococcal sore throat"), (3, 1, 0.4, 0.2), False, (PENICILLIN_V,)),
    Problem(sct("195662009", "Acute viral pharyngitis"), (3, 1.5, 1, 0.5), False, (IBUPROFEN,)),
    Problem(sct("65363002", "Otitis media"), (4, 0.2, 0.1, 0.1), False, (ACETAMINOPHEN,)),
    Problem(sct("68566005", "Urinary tract infectious disease"), (0.5, 1.5, 1.2, 2), False),
    Problem(sct("233604007", "Pneumonia"), (0.8, 0.4, 0.6, 2), False),
    Problem(sct("44465007", "Sprain of ankle"), (1.5, 1.5, 0.8, 0.3), False, (IBUPROFEN,)),
)

CONDITION_ACTIVE = Code(CONDITION_CLINICAL, "active", "Active")
CONDITION_RESOLVED = Code(CONDITION_CLINICAL, "resolved", "Resolved")
CONDITION_CONFIRMED = Code(CONDITION_VERIFICATION, "confirmed", "Confirmed")
PROBLEM_LIST_ITEM = Code(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")
SEVERITIES: tuple[Code, ...] = (
    sct("255604002", "Mild"),
    sct("6736007", "Moderate"),
    sct("24484000", "Severe"),
)

# -- allergies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Allergen:
    """Something a patient may react to, and the reactions it typically causes."""

    code: Code
    text: str
    category: str  # food | medication | environment | biologic
    kind: str  # allergy | intolerance
    reactions: tuple[Code, ...]


ALLERGY_STATUSES: dict[str, Code] = {
    code: Code(ALLERGY_CLINICAL, code, code.capitalize()) for code in ("active", "inactive")
}
ALLERGY_VERIFICATIONS: dict[str, Code] = {
    code: Code(ALLERGY_VERIFICATION, code, code.capitalize())
    for code in ("confirmed", "unconfirmed")
}
ANAPHYLAXIS = sct("39579001", "Anaphylactic reaction")
HIVES = sct("247472004", "Hives")
RASH = sct("271807003", "Skin rash")
ITCHING = sct("418290006", "Itching")
NAUSEA = sct("422587007", "Nausea")
VOMITING = sct("422400008", "Vomiting")
DIARRHEA = sct("62315008", "Diarrhea")
DYSPNEA = sct("267036007", "Dyspnea")
WHEEZING = sct("56018004", "Wheezing")
SNEEZING = sct("76067001", "Sneezing")
NASAL_CONGESTION = sct("68235000", "Nasal congestion")
ANGIOEDEMA = sct("402387002", "Allergic angioedema")
CONJUNCTIVITIS = sct("9826008", "Conjunctivitis")

MEDICATION, FOOD, ENVIRONMENT = "medication", "food", "environment"
ALLERGY, INTOLERANCE = "allergy", "intolerance"
ALLERGENS: tuple[Allergen, ...] = (
    Allergen(
        rx("7980", "penicillin G"), "Penicillin", MEDICATION, ALLERGY, (HIVES, RASH, ANAPHYLAXIS)
    ),
    Allergen(rx("723", "amoxicillin"), "Amoxicillin", MEDICATION, ALLERGY, (RASH, HIVES)),
    Allergen(rx("10180", "sulfamethoxazole"), "Sulfa drugs", MEDICATION, ALLERGY, (RASH, ITCHING)),
    Allergen(rx("1191", "aspirin"), "Aspirin", MEDICATION, INTOLERANCE, (WHEEZING, ANGIOEDEMA)),
    Allergen(rx("5640", "ibuprofen"), "Ibuprofen", MEDICATION, INTOLERANCE, (NAUSEA, HIVES)),
    Allergen(
        rx("2670", "codeine"), "Codeine", MEDICATION, INTOLERANCE, (NAUSEA, VOMITING, ITCHING)
    ),
    Allergen(rx("7052", "morphine"), "Morphine", MEDICATION, INTOLERANCE, (ITCHING, NAUSEA)),
    Allergen(sct("256349002", "Peanut - dietary"), "Peanut", FOOD, ALLERGY, (HIVES, ANAPHYLAXIS)),
    Allergen(sct("227037002", "Fish - dietary"), "Fish", FOOD, ALLERGY, (HIVES, VOMITING)),
    Allergen(sct("102263004", "Eggs (edible)"), "Egg", FOOD, ALLERGY, (RASH, VOMITING)),
    Allergen(sct("3718001", "Cow's milk"), "Cow's milk", FOOD, INTOLERANCE, (DIARRHEA, NAUSEA)),
    Allergen(
        sct("111088007", "Latex"), "Latex", ENVIRONMENT, ALLERGY, (RASH, ITCHING, ANAPHYLAXIS)
    ),
    Allergen(
        sct("288328004", "Bee venom"), "Bee venom", ENVIRONMENT, ALLERGY, (ANGIOEDEMA, ANAPHYLAXIS)
    ),
    Allergen(
        sct("256277009", "Grass pollen"),
        "Grass pollen",
        ENVIRONMENT,
        ALLERGY,
        (SNEEZING, CONJUNCTIVITIS),
    ),
    Allergen(
        sct("260152009", "Cat dander"), "Cat dander", ENVIRONMENT, ALLERGY, (SNEEZING, WHEEZING)
    ),
    Allergen(
        sct("260147004", "House dust mite"),
        "House dust mite",
        ENVIRONMENT,
        ALLERGY,
        (SNEEZING, NASAL_CONGESTION),
    ),
)

# -- coverage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payor:
    """An insurer: its plans and the employer or program groups it covers."""

    slug: str
    name: str
    policy: Code
    audience: str  # "commercial", "senior" (65 and over) or "public"
    prefix: str  # of subscriber ids
    plans: tuple[tuple[str, str], ...]  # (value, name)
    groups: tuple[tuple[str, str], ...]  # (value, name)


HEALTH_INSURANCE_PLAN = Code(V3_ACT_CODE, "HIP", "health insurance plan policy")
PUBLIC_HEALTHCARE = Code(V3_ACT_CODE, "PUBLICPOL", "public healthcare")
SELF = Code(SUBSCRIBER_RELATIONSHIP, "self", "Self")
GROUP_CLASS = Code(COVERAGE_CLASS, "group", "Group")
PLAN_CLASS = Code(COVERAGE_CLASS, "plan", "Plan")

PAYORS: tuple[Payor, ...] = (
    Payor(
        "humongous",
        "Humongous Insurance",
        HEALTH_INSURANCE_PLAN,
        "commercial",
        "HUM",
        (("HUM-GOLD", "Gold PPO"), ("HUM-SILVER", "Silver HMO"), ("HUM-BRONZE", "Bronze HSA")),
        (("G-10442", "Contoso Ltd. employees"), ("G-20871", "Fabrikam, Inc. employees"),
         ("G-31150", "Tailspin Toys staff"), ("G-40027", "Alpine Ski House seasonal staff")),
    ),
    Payor(
        "woodgrove",
        "Woodgrove Health Plan",
        HEALTH_INSURANCE_PLAN,
        "commercial",
        "WGH",
        (("WGH-PREMIER", "Premier Choice"), ("WGH-ESSENTIAL", "Essential Care")),
        (("WG-5521", "Northwind Traders staff"), ("WG-6630", "Adventure Works employees"),
         ("WG-7712", "Wide World Importers employees")),
    ),
    Payor(
        "lamna",
        "Lamna Healthcare Company",
        HEALTH_INSURANCE_PLAN,
        "commercial",
        "LMN",
        (("LMN-PLUS", "Lamna Plus"), ("LMN-FAMILY", "Family Shield")),
        (("LM-0081", "Litware, Inc. employees"), ("LM-0145", "Trey Research staff"),
         ("LM-0200", "Individual and family members")),
    ),
    Payor(
        "medicare",
        "Medicare",
        PUBLIC_HEALTHCARE,
        "senior",
        "MCR",
        (("MEDICARE-AB", "Medicare Part A and B"), ("MEDICARE-ADV", "Medicare Advantage")),
        (("MEDICARE", "Medicare beneficiaries"),),
    ),
    Payor(
        "medicaid",
        "Medicaid",
        PUBLIC_HEALTHCARE,
        "public",
        "MCD",
        (("MEDICAID-STD", "Standard Medicaid"), ("CHIP", "Children's Health Insurance Program")),
        (("MEDICAID", "Medicaid enrollees"),),
    ),
)  # fmt: skip
