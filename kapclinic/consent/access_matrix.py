from kapclinic.testing.matrix import Entry, roles

MATRIX = {"consent:index": Entry(roles(('admin', 'prescriber',)))}
