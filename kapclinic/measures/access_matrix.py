from kapclinic.testing.matrix import Entry, roles

MATRIX = {"measures:index": Entry(roles(('prescriber', 'therapist', 'nurse',)))}
