"""Every module of lorag's packages declares its public names in `__all__`, and they exist.

A package's `__init__` re-exports names from its modules: each must be public there too (in
the `__all__` of the module that defines it), so `from adapters import X` and
`from adapters.registry import X` never disagree about what is public.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("lorag", "service", "adapters", "ingest", "train", "cli")


def module_names() -> dict[str, bool]:
    """Every module's dotted name -> whether it is a package (found without importing it)."""
    names = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names[package_name] = True
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names[info.name] = info.ispkg
    return dict(sorted(names.items()))


MODULES = module_names()
PACKAGE_MODULES = [name for name, ispkg in MODULES.items() if ispkg]


def public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module.__name__} has no __all__"
    assert isinstance(names, list | tuple), f"{module.__name__}.__all__ is not a list"
    assert all(isinstance(name, str) for name in names), f"{module.__name__}.__all__: not str"
    return list(names)


def test_every_package_has_modules() -> None:
    for package_name in PACKAGES:
        assert any(name.startswith(f"{package_name}.") for name in MODULES), package_name


@pytest.mark.parametrize("name", list(MODULES))
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    names = public_names(module)
    assert len(names) == len(set(names)), f"{name}.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("name", PACKAGE_MODULES)
def test_package_reexports_are_public_where_defined(name: str) -> None:
    package = importlib.import_module(name)
    for exported in public_names(package):
        value = getattr(package, exported)
        origin = getattr(value, "__module__", None)
        if not isinstance(origin, str) or origin == name or not origin.startswith(f"{name}."):
            continue  # defined in the package itself, a constant, or from elsewhere
        module = importlib.import_module(origin)
        assert exported in public_names(module), (
            f"{name} re-exports {exported}, which {origin}.__all__ does not list"
        )
