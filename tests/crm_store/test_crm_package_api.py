"""The package exports its public API (lazily) and nothing else."""

from __future__ import annotations

import importlib

import pytest

import crm_store


def test_every_exported_name_resolves_to_its_module_object() -> None:
    assert len(crm_store.__all__) == len(set(crm_store.__all__))
    for name in crm_store.__all__:
        value = getattr(crm_store, name)
        module = importlib.import_module(value.__module__)
        assert getattr(module, name) is value, name
    assert {"Database", "make_engine", "import_consumers", "ImportFileError", "seed_demo"} <= set(
        dir(crm_store)
    )


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        crm_store.no_such_thing  # noqa: B018  (the attribute access is the test)
