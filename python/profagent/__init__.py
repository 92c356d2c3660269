"""ProfAgent: profile an ONNX model on ONNX Runtime, plan layerwise pruning and quantization
(the built-in planner or an LLM), apply, evaluate with paired statistics, iterate to a budget.

The functions mirror the ``profagent`` command's verbs and return the documents its ``--json``
writes, as dicts::

    import profagent
    prof = profagent.profile("model.onnx")
    report = profagent.compress("model.onnx", data=(x, y), out="run", max_acc_drop=1.0)

ONNX Runtime is the ``onnxruntime`` package of this environment (its ``capi/`` library),
unless ``ORT_DYLIB_PATH`` names another one.
"""

from __future__ import annotations

import importlib.util
import os


def _point_at_onnxruntime() -> None:
    """Sets ORT_DYLIB_PATH to this environment's ``onnxruntime`` package library when it is
    not set: the CLI asks ``python3`` on PATH, which need not be this interpreter."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return  # the library's own discovery (PATH python3, LD_LIBRARY_PATH) takes over
    capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
    if os.path.isdir(capi):
        os.environ["ORT_DYLIB_PATH"] = capi


_point_at_onnxruntime()

from ._api import (  # noqa: E402
    BadInputError,
    BudgetNotMetError,
    ProfAgentError,
    RuntimeFailure,
    compress,
    evaluate,
    main,
    profile,
    prune,
    quantize,
)

__all__ = [
    "BadInputError",
    "BudgetNotMetError",
    "ProfAgentError",
    "RuntimeFailure",
    "compress",
    "evaluate",
    "main",
    "profile",
    "prune",
    "quantize",
]
