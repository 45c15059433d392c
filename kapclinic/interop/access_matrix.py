from kapclinic.testing.matrix import Entry, patient_kwargs, patient_scoped

MATRIX = {
    "interop:patient_bundle": Entry(
        patient_scoped(("prescriber", "therapist", "nurse")), kwargs=patient_kwargs
    ),
}
