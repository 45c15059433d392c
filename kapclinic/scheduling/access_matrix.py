from kapclinic.testing.matrix import Entry, roles

MATRIX = {"scheduling:index": Entry(roles(('admin', 'front_desk', 'prescriber', 'therapist', 'nurse',)))}
