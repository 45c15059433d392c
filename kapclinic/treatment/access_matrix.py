from kapclinic.testing.matrix import Entry, roles

MATRIX = {"treatment:index": Entry(roles(('prescriber', 'therapist', 'nurse',)))}
