from kapclinic.testing.matrix import Entry, public

MATRIX = {"public:index": Entry(public())}
