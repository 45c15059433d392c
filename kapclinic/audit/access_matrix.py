from kapclinic.testing.matrix import Entry, roles

MATRIX = {"audit:log": Entry(roles(("admin",)))}
