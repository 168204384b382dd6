from __future__ import annotations

import types

import incident.notices


def test_public_surface_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(incident.notices).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(incident.notices.__all__)
