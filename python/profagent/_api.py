"""The verbs of the ``profagent`` command as Python functions.

Every function builds the command line the CLI would get (keyword ``foo_bar=...`` is the flag
``--foo-bar``), runs it in this process through the Rust library (``profagent._native.run``:
the GIL is released, progress goes to stderr, Ctrl-C interrupts) and returns the document the
command writes with ``--json``, parsed: the same fields, the same numbers. Errors raise
:class:`ProfAgentError` subclasses carrying the CLI's one-line message.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]


class ProfAgentError(Exception):
    """Base class of every error a profagent call raises; ``exit_code`` is the CLI's."""

    exit_code: int = _native.BAD_INPUT

    def __init__(self, message: str, exit_code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(ProfAgentError, ValueError):
    """Bad input: a model, data, flag value or file that cannot be used (CLI exit code 2)."""

    exit_code = _native.BAD_INPUT


class RuntimeFailure(ProfAgentError, RuntimeError):
    """A failure of a rewrite or of the runtime (CLI exit code 3)."""

    exit_code = _native.RUNTIME_FAILURE


class BudgetNotMetError(ProfAgentError):
    """``compress`` ended without meeting the budget (CLI exit code 1). ``report`` holds the
    run report (the same dict ``compress`` returns when the budget is met)."""

    exit_code = _native.BUDGET_NOT_MET

    def __init__(self, message: str, report: Dict[str, Any]):
        super().__init__(message)
        self.report = report


def _flags(options: Dict[str, Any]) -> List[str]:
    """``{"calib_samples": 16, "no_probe": True}`` -> ``["--calib-samples", "16", "--no-probe"]``.
    ``None`` and ``False`` leave a flag out; a list or tuple repeats it."""
    argv: List[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag, _text(item)]
        else:
            argv += [flag, _text(value)]
    return argv


def _text(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _run(argv: List[str]) -> int:
    """Runs one command; raises the exception of a failed one, returns its exit code."""
    code, error = _native.run(argv)
    if error is None:
        return code
    if code == _native.RUNTIME_FAILURE:
        raise RuntimeFailure(error)
    raise BadInputError(error)


def _run_json(argv: List[str]) -> Tuple[int, Dict[str, Any]]:
    """Runs a command with ``--json`` to a temporary file and returns its exit code and
    the parsed document."""
    with tempfile.TemporaryDirectory(prefix="profagent-") as scratch:
        path = Path(scratch) / "result.json"
        code = _run(argv + ["--json", str(path)])
        with open(path, encoding="utf-8") as f:
            return code, json.load(f)


def _data_path(data: Any, scratch: str, name: str) -> str:
    """A data argument as the CLI takes it: a path as it is; numpy arrays written to an
    ``.npz`` the CLI reads into the same in-memory dataset as ``.npy``/``.npz`` files.

    Arrays: ``x`` (samples first, e.g. NCHW float32 already preprocessed) or a pair
    ``(x, y)`` with integer class indices ``y``; a dict of arrays names the model's inputs
    (several-input models), with labels under ``"y"``."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    import numpy as np

    arrays: Dict[str, Any]
    if isinstance(data, dict):
        arrays = {str(k): np.asarray(v) for k, v in data.items()}
    elif isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise BadInputError(
                f"{name}: give a path, an array of inputs, or a pair (inputs, labels); got a "
                f"sequence of {len(data)}"
            )
        arrays = {"x": np.asarray(data[0], dtype=np.float32), "y": _labels(data[1], name)}
    else:
        arrays = {"x": np.asarray(data, dtype=np.float32)}
    path = os.path.join(scratch, f"{name}.npz")
    np.savez(path, **arrays)
    return path


def _labels(labels: Any, name: str) -> Any:
    import numpy as np

    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise BadInputError(
            f"{name}: labels must be a 1-D integer array (class indices), got dtype {y.dtype} "
            f"shape {tuple(y.shape)}"
        )
    return y.astype(np.int64)


def profile(model: PathLike, **options: Any) -> Dict[str, Any]:
    """Per-layer parameters, MACs, bytes and measured latency/memory of ``model``
    (``profagent profile MODEL --json``). Options are the command's flags, e.g.
    ``batch=8, runs=20, threads=1, input_shape="1x3x224x224"``."""
    return _run_json(["profile", os.fspath(model)] + _flags(options))[1]


def quantize(
    model: PathLike,
    out: PathLike,
    mode: str = "dynamic",
    calib: Any = None,
    **options: Any,
) -> Dict[str, Any]:
    """Quantizes ``model`` into ``out`` (``profagent quantize MODEL -o OUT --mode MODE``):
    ``mode`` is ``dynamic``, ``static`` (needs ``calib``: a folder, a file, or numpy arrays)
    or ``int4``. Returns the command's ``--json`` document."""
    with tempfile.TemporaryDirectory(prefix="profagent-data-") as scratch:
        argv = ["quantize", os.fspath(model), "--output", os.fspath(out), "--mode", mode]
        if calib is not None:
            argv += ["--calib", _data_path(calib, scratch, "calib")]
        return _run_json(argv + _flags(options))[1]


def prune(
    model: PathLike,
    out: PathLike,
    ratio: Optional[float] = None,
    calib: Any = None,
    **options: Any,
) -> Dict[str, Any]:
    """Structured pruning (``profagent prune MODEL -o OUT --ratio R``); ``layers=["REGEX=R"]``,
    ``heads=R``, ``importance=...`` and the other flags as keywords; ``calib`` as in
    :func:`quantize`. Returns the command's ``--json`` document."""
    with tempfile.TemporaryDirectory(prefix="profagent-data-") as scratch:
        argv = ["prune", os.fspath(model), "--output", os.fspath(out)]
        if ratio is not None:
            argv += ["--ratio", str(ratio)]
        if calib is not None:
            argv += ["--calib", _data_path(calib, scratch, "calib")]
        return _run_json(argv + _flags(options))[1]


def evaluate(model: PathLike, data: Any, **options: Any) -> Dict[str, Any]:
    """Accuracy, fidelity, latency and memory of ``model`` on ``data`` (``profagent eval``):
    ``data`` is a folder/file path or numpy arrays ``(x, y)``. Returns the ``--json``
    document."""
    with tempfile.TemporaryDirectory(prefix="profagent-data-") as scratch:
        argv = ["eval", os.fspath(model), "--data", _data_path(data, scratch, "data")]
        return _run_json(argv + _flags(options))[1]


def compress(
    model: PathLike,
    data: Any,
    out: PathLike,
    max_acc_drop: Optional[float] = None,
    llm: Optional[str] = None,
    seed: int = 0,
    **options: Any,
) -> Dict[str, Any]:
    """Profile -> plan -> apply -> evaluate -> feedback until the budget is met
    (``profagent compress``). ``data``: labelled images (an ImageFolder path) or numpy arrays
    ``(x, y)`` (x preprocessed, samples first, y class indices), split with ``seed`` into
    calibration, feedback and holdout as the CLI does. ``llm``: ``None`` for the built-in
    planner, else ``PROVIDER:MODEL``. Other flags as keywords (``target_macs=0.5``,
    ``rounds=4``, ``min_cosine=0.999``, ...).

    Returns the run report (``OUT/report.json``, the same document as ``--json``). Raises
    :class:`BudgetNotMetError` (with ``.report``) when the budget was not met, and
    ``KeyboardInterrupt`` after Ctrl-C once the report of what was done is written."""
    with tempfile.TemporaryDirectory(prefix="profagent-data-") as scratch:
        argv = [
            "compress",
            os.fspath(model),
            "--data",
            _data_path(data, scratch, "data"),
            "--out",
            os.fspath(out),
            "--seed",
            str(seed),
        ]
        code, report = _run_json(
            argv + _flags(dict(options, max_acc_drop=max_acc_drop, llm=llm))
        )
    if code == _native.BUDGET_NOT_MET:
        stop = (report.get("final") or {}).get("stop_reason", "")
        raise BudgetNotMetError(f"budget not met; stopped: {stop}", report)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``profagent`` command (the console script the wheel installs)."""
    import sys

    args = list(sys.argv if argv is None else ["profagent", *argv])
    args[0] = "profagent"
    return _native.main(args)
