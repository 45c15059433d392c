from kapclinic.testing.matrix import Entry, roles

MATRIX = {"notes:index": Entry(roles(('prescriber', 'therapist', 'nurse',)))}
