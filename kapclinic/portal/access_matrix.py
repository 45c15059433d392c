from kapclinic.testing.matrix import Entry, roles

MATRIX = {"portal:index": Entry(roles(("patient_user", "other_patient_user")))}
