"""Public names: what ``dir()`` and ``import *`` show.

Specification:
- ``fastbn.init`` and ``fastbn.clip`` list exactly their ``__all__`` (plus dunders) in ``dir()``:
  the modules they import (numpy, math, the validation helpers) are not part of their API.
- ``fastbn`` shows, besides its ``__all__``, only its own submodules (``fastbn.clip`` & co.).
- Every name in the ``__all__`` of ``fastbn``, ``fastbn.init``, ``fastbn.clip`` and
  ``fastbn._config`` exists and is documented: a function or class has a docstring with an
  Examples section (a named tuple: a docstring); any other object (a module, the version string) is named in its parent's
  docstring and, if it is a module, has a docstring of its own.
"""
import inspect
import re
import types

import pytest

import fastbn
from fastbn import _config, clip, init

MODULES = {"fastbn": fastbn, "fastbn.init": init, "fastbn.clip": clip,
           "fastbn._config": _config}


@pytest.mark.parametrize("module", [init, clip], ids=["init", "clip"])
def test_dir_shows_only_the_public_names(module):
    shown = [n for n in dir(module) if not (n.startswith("__") and n.endswith("__"))]
    assert shown == sorted(module.__all__)


@pytest.mark.parametrize("module", [init, clip], ids=["init", "clip"])
def test_star_import_gives_all(module):
    namespace = {}
    exec(f"from {module.__name__} import *", namespace)
    assert sorted(n for n in namespace if n != "__builtins__") == sorted(module.__all__)


def test_top_level_shows_all_and_its_submodules_only():
    extra = {n for n in dir(fastbn) if not n.startswith("_")} - set(fastbn.__all__)
    for name in extra:
        obj = getattr(fastbn, name)
        assert isinstance(obj, types.ModuleType) and obj.__name__ == f"fastbn.{name}", name


@pytest.mark.parametrize("module", list(MODULES.values()), ids=list(MODULES))
def test_every_name_in_all_exists_and_is_documented(module):
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.{name}: in __all__ but not defined"
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, tuple):     # a result's named tuple
            assert obj.__doc__ and not obj.__doc__.startswith(f"{name}("), f"{name}: no docstring"
        elif inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            assert re.search(r"^Examples\n-{8}\n", doc, re.M), f"{name}: no Examples section"
        else:
            assert re.search(rf"\b{re.escape(name)}\b", module.__doc__), \
                f"{module.__name__}.{name}: not named in the module docstring"
            if isinstance(obj, types.ModuleType):
                assert inspect.getdoc(obj), f"{name}: module without a docstring"
