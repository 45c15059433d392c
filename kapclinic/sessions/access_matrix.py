from kapclinic.testing.matrix import Entry, roles

MATRIX = {"sessions:index": Entry(roles(('prescriber', 'nurse', 'therapist',)))}
