from typing import Any

from kapclinic.testing.matrix import Entry, public


def _public_clinic(world: Any) -> dict[str, Any]:
    world.clinic.is_public = True
    world.clinic.save(update_fields=["is_public"])
    return {}


MATRIX = {
    "public:index": Entry(public()),
    "public:evidence": Entry(public()),
    "public:risks": Entry(public()),
    "public:candidates": Entry(public()),
    "public:expect": Entry(public()),
    "public:therapies": Entry(public()),
    "public:self_check": Entry(public()),
    "public:inquiry": Entry(public(), setup=_public_clinic),
    "public:inquiry_sent": Entry(public()),
}
