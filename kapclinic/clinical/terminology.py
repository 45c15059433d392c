"""Coded diagnoses offered when recording a patient's indication.

Codes from docs/clinical-reference.md#diagnosis-codes (§5.3) [S66]. The reference asks that every code be
verified against the official SNOMED CT browser and CMS ICD-10-CM tables before release; entries whose
SNOMED concept the reference does not give carry an empty string rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiagnosisCode:
    icd10: str
    snomed: str
    description: str


DIAGNOSIS_CODES: tuple[DiagnosisCode, ...] = (
    DiagnosisCode("F32.0", "", "Major depressive disorder, single episode, mild"),
    DiagnosisCode("F32.1", "", "Major depressive disorder, single episode, moderate"),
    DiagnosisCode(
        "F32.2", "", "Major depressive disorder, single episode, severe without psychotic features"
    ),
    DiagnosisCode("F32.3", "", "Major depressive disorder, single episode, severe with psychotic features"),
    DiagnosisCode("F32.4", "", "Major depressive disorder, single episode, in partial remission"),
    DiagnosisCode("F32.5", "", "Major depressive disorder, single episode, in full remission"),
    DiagnosisCode("F32.9", "370143000", "Major depressive disorder, single episode, unspecified"),
    DiagnosisCode("F33.1", "310496002", "Major depressive disorder, recurrent, moderate"),
    DiagnosisCode("F33.9", "370143000", "Major depressive disorder, recurrent, unspecified"),
    DiagnosisCode("F41.1", "21897009", "Generalized anxiety disorder"),
    DiagnosisCode("F43.10", "47505003", "Post-traumatic stress disorder, unspecified"),
    DiagnosisCode("F43.11", "47505003", "Post-traumatic stress disorder, acute"),
    DiagnosisCode("F43.12", "47505003", "Post-traumatic stress disorder, chronic"),
)

BY_ICD10: dict[str, DiagnosisCode] = {code.icd10: code for code in DIAGNOSIS_CODES}
