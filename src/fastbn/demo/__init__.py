"""``python -m fastbn.demo``: the claims about initialization and batch norm, measured.

A small NumPy network (:mod:`fastbn.demo.nn`: dense layers, :class:`fastbn.BatchNorm`,
ReLU/tanh/sigmoid, softmax cross-entropy, SGD with momentum, :func:`fastbn.clip_grad_norm`,
weights from :mod:`fastbn.init`) trained on scikit-learn's bundled digits with fixed seeds, in
the configurations listed in :mod:`fastbn.demo.experiments`; :mod:`fastbn.demo.report` writes the
figures and the Markdown table.  scikit-learn and matplotlib are needed only here:
``pip install 'fastbn[demo]'``.
"""
import importlib

_INSTALL = "pip install 'fastbn[demo]'  (or: pip install scikit-learn matplotlib)"


def require(module, package):
    """Import ``module`` (of the pip ``package``), or raise ImportError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"fastbn.demo needs {package}, which is not installed ({e}); "
                          f"install the demo extra: {_INSTALL}") from e
