from kapclinic.testing.matrix import STAFF, Entry, public, roles

MATRIX = {
    "core:home": Entry(roles((*STAFF, "other_clinic_staff"), patient_user=302, other_patient_user=302)),
    "core:healthz": Entry(public()),
}
