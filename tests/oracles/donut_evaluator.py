"""Test oracle: Donut's own ``JSONParseEvaluator``, loaded from the installed donut-python.

Why not ``from donut.util import JSONParseEvaluator``: ``donut/util.py`` imports torch, datasets
and transformers at module level (for its ``DonutDataset``), and installing donut-python with its
dependencies would pull several GB of CUDA torch into a scoring-only environment. The evaluator
class itself needs only ``zss`` and ``nltk.edit_distance``. So donut-python is installed without
its dependencies, and this module parses ``donut/util.py`` with ``ast``, keeps the class
definition alone and executes it, unmodified, in a namespace that holds exactly the names it uses.
The code that runs is Donut's own, byte for byte; nothing here is part of the vlmkit package.
"""

from __future__ import annotations

import ast
import importlib.util
import typing
from pathlib import Path
from typing import Any

_CLASS_NAME = "JSONParseEvaluator"


def donut_util_path() -> Path:
    """Path of the installed ``donut/util.py``, found without importing the package.

    Raises ImportError (so tests can ``pytest.skip``) when donut-python is not installed.
    """
    # find_spec on a top-level name locates the package without executing its __init__, which
    # would import torch.
    spec = importlib.util.find_spec("donut")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("donut-python is not installed (pip install --no-deps donut-python)")
    path = Path(next(iter(spec.submodule_search_locations))) / "util.py"
    if not path.is_file():
        raise ImportError(f"donut-python is installed but {path} is missing")
    return path


def load_donut_evaluator_class() -> type:
    """Return Donut's ``JSONParseEvaluator`` class, executed from its installed source."""
    path = donut_util_path()
    # Donut's own runtime dependencies of the evaluator; ImportError propagates when absent.
    import zss
    from nltk import edit_distance

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    classes = [
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == _CLASS_NAME
    ]
    if len(classes) != 1:
        raise ImportError(f"{path} has no single class {_CLASS_NAME}")
    module = ast.Module(body=classes, type_ignores=[])
    namespace: dict[str, Any] = {
        "__name__": "donut.util",
        "zss": zss,
        "Node": zss.Node,
        "edit_distance": edit_distance,
        # The typing names util.py imports for its annotations.
        **{name: getattr(typing, name) for name in ("Any", "Dict", "List", "Tuple", "Union")},
    }
    exec(compile(module, str(path), "exec"), namespace)
    return namespace[_CLASS_NAME]


def load_donut_evaluator() -> Any:
    """Return an instance of Donut's real ``JSONParseEvaluator`` (ImportError if unavailable)."""
    return load_donut_evaluator_class()()
