from kapclinic.testing.matrix import Entry, roles

MATRIX = {"intake:index": Entry(roles(('admin', 'front_desk', 'prescriber', 'therapist', 'nurse',)))}
