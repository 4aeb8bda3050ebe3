"""The public names of fastbn.batchnorm and fastbn.reference.

Specification: each module's ``__all__`` lists exactly the public functions and classes it
defines (not what it imports, such as ``np``, ``warnings`` or the validation helpers), every
listed name exists and has a docstring, and ``from module import *`` gives exactly those.
"""
import inspect

import pytest

from fastbn import batchnorm, reference


def _defined_here(module):
    return {name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__}


@pytest.mark.parametrize("module", [batchnorm, reference], ids=lambda m: m.__name__)
def test_all_lists_the_public_definitions(module):
    assert len(module.__all__) == len(set(module.__all__))
    assert set(module.__all__) == _defined_here(module)
    for name in module.__all__:
        assert getattr(module, name).__doc__, name


@pytest.mark.parametrize("module", [batchnorm, reference], ids=lambda m: m.__name__)
def test_star_import_gives_only_all(module):
    namespace = {}
    exec(f"from {module.__name__} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(module.__all__)
    assert "np" not in namespace and "v" not in namespace
