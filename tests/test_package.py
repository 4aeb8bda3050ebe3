"""The package as installed: version, typing information, documentation.

Specification:
- ``fastbn.__version__`` is the version of the installed distribution (one source:
  ``fastbn/_version.py``).
- The package is typed (``py.typed``) and every compiled module has a ``.pyi`` stub beside it
  that declares every public name the module defines.
- Every public function, class and method has a numpydoc docstring with an Examples section
  (those examples run as doctests: ``--doctest-modules``); a ``fastbn.reference`` function
  points to its fastbn twin's documentation (and has the twin's signature when the twin is a
  top-level kernel function).
"""
import ast
import importlib
import importlib.metadata
import importlib.machinery
import inspect
import os
import re

import pytest

import fastbn

PKG_DIR = os.path.dirname(fastbn.__file__)


def test_version_is_the_distributions_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.dev\d+)?", fastbn.__version__)
    try:
        installed = importlib.metadata.version("fastbn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastbn is imported from a source tree that is not installed")
    assert installed == fastbn.__version__


def _compiled_modules():
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(f.split(".")[0] for f in os.listdir(PKG_DIR) if f.endswith(suffixes))


def test_package_is_typed():
    assert os.path.isfile(os.path.join(PKG_DIR, "py.typed"))


@pytest.mark.parametrize("name", _compiled_modules())
def test_compiled_module_has_a_complete_stub(name):
    stub = os.path.join(PKG_DIR, name + ".pyi")
    assert os.path.isfile(stub), f"{name}: no stub {stub}"
    with open(stub) as f:
        tree = ast.parse(f.read())
    declared = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    declared |= {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)}
    module = importlib.import_module(f"fastbn.{name}")
    public = {n for n in vars(module) if not n.startswith("_")
              and getattr(getattr(module, n), "__module__", module.__name__) == module.__name__
              and not inspect.ismodule(getattr(module, n))}
    assert public <= declared, f"{name}: not in the stub: {sorted(public - declared)}"


def _public_api():
    for name, obj in vars(fastbn.reference).items():
        if inspect.isfunction(obj) and not name.startswith("_"):
            yield f"reference.{name}", obj
    for name in getattr(fastbn, "init", None) and fastbn.init.__all__ or []:
        yield f"init.{name}", getattr(fastbn.init, name)
    for name in fastbn.__all__:
        obj = getattr(fastbn, name)
        if inspect.isfunction(obj) or inspect.isclass(obj) and not issubclass(obj, tuple):
            yield name, obj
            if inspect.isclass(obj):
                for meth, f in vars(obj).items():
                    if inspect.isfunction(f) and not meth.startswith("_"):
                        yield f"{name}.{meth}", f


@pytest.mark.parametrize("name, obj", list(_public_api()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_function_has_a_numpydoc_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert re.search(r"^Examples\n-{8}\n", doc, re.M), f"{name}: no Examples section"
    assert ">>> " in doc.split("Examples", 1)[1], f"{name}: the Examples section has no doctest"
    if name.startswith("reference."):   # documented by its fastbn twin
        short = name.split(".")[1]
        if hasattr(fastbn, short):         # a kernel's twin: the same parameters and results
            assert f":func:`fastbn.{short}`" in doc, f"{name}: does not name its fastbn twin"
            assert inspect.signature(obj) == inspect.signature(getattr(fastbn, short)), \
                f"{name}: not the twin's signature"
        else:                              # an initializer's NumPy idiom (rng: a Generator)
            assert f":func:`fastbn.init.{short}`" in doc, f"{name}: does not name its fastbn twin"
    elif inspect.signature(obj).parameters.keys() - {"self"}:
        assert re.search(r"^Parameters\n-{10}\n", doc, re.M), f"{name}: no Parameters section"
        if name.startswith("init."):   # and each parameter of an initializer is described
            section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
            for param in inspect.signature(obj).parameters:
                assert re.search(rf"^(\w+, )*{param}(, \w+)* :", section, re.M), \
                    f"{name}: {param} undocumented"
