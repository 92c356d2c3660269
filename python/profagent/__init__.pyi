"""Type stubs of the profagent package (see ``profagent/_api.py`` for the docstrings)."""

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, os.PathLike[str]]
Arrays = Union[
    npt.ArrayLike,
    Tuple[npt.ArrayLike, npt.ArrayLike],
    Mapping[str, npt.ArrayLike],
]
Data = Union[PathLike, Arrays]

class ProfAgentError(Exception):
    """Base class of every profagent error; ``message`` is the CLI's one-line error."""

    message: str
    exit_code: int
    def __init__(self, message: str, exit_code: Optional[int] = ...) -> None: ...

class BadInputError(ProfAgentError, ValueError):
    """Bad model, data or option (the CLI's exit code 2)."""

class RuntimeFailure(ProfAgentError, RuntimeError):
    """A rewrite or the runtime failed (the CLI's exit code 3)."""

class BudgetNotMetError(ProfAgentError):
    """``compress`` ended without meeting the budget; ``report`` is the run report."""

    report: Dict[str, Any]
    def __init__(self, message: str, report: Dict[str, Any]) -> None: ...

def profile(
    model: PathLike,
    *,
    batch: int = ...,
    runs: int = ...,
    warmup: int = ...,
    threads: int = ...,
    top: int = ...,
    input_shape: Union[str, Sequence[str], None] = ...,
    data: Optional[PathLike] = ...,
    preprocess: Optional[str] = ...,
    **options: Any,
) -> Dict[str, Any]:
    """``profagent profile MODEL --json``: per-layer parameters, MACs, bytes, latency."""

def quantize(
    model: PathLike,
    out: PathLike,
    mode: str = "dynamic",
    calib: Optional[Data] = None,
    *,
    calib_samples: int = ...,
    seed: Optional[int] = ...,
    preprocess: Optional[str] = ...,
    activations: str = ...,
    weight_range: str = ...,
    include: Union[str, Sequence[str], None] = ...,
    exclude: Union[str, Sequence[str], None] = ...,
    check_runtime: str = ...,
    **options: Any,
) -> Dict[str, Any]:
    """``profagent quantize MODEL -o OUT --mode MODE --json``."""

def prune(
    model: PathLike,
    out: PathLike,
    ratio: Optional[float] = None,
    calib: Optional[Data] = None,
    *,
    layers: Union[str, Sequence[str], None] = ...,
    heads: Optional[float] = ...,
    importance: str = ...,
    round_to: Union[int, str] = ...,  # N, or "runtime": the channel block ONNX Runtime pads convolutions to here
    protect: Union[str, Sequence[str], None] = ...,
    seed: int = ...,
    min_cosine: Optional[float] = ...,
    **options: Any,
) -> Dict[str, Any]:
    """``profagent prune MODEL -o OUT --ratio R --json``."""

def evaluate(
    model: PathLike,
    data: Data,
    *,
    preprocess: Optional[str] = ...,
    reference: Optional[PathLike] = ...,
    samples: Optional[int] = ...,
    batch_size: int = ...,
    threads: int = ...,
    **options: Any,
) -> Dict[str, Any]:
    """``profagent eval MODEL --data DATA --json``."""

def compress(
    model: PathLike,
    data: Data,
    out: PathLike,
    max_acc_drop: Optional[float] = None,
    llm: Optional[str] = None,
    seed: int = 0,
    *,
    min_cosine: Optional[float] = ...,
    target_latency: Optional[float] = ...,
    target_memory: Optional[float] = ...,
    target_speedup: Optional[float] = ...,
    target_macs: Optional[float] = ...,
    rounds: int = ...,
    patience: int = ...,
    preprocess: str = ...,
    calib_samples: int = ...,
    feedback_samples: int = ...,
    holdout_samples: Optional[int] = ...,
    no_probe: bool = ...,
    sensitivity_groups: int = ...,
    compare_seconds: float = ...,
    threads: int = ...,
    **options: Any,
) -> Dict[str, Any]:
    """``profagent compress``: the run report (report.json) as a dict."""

def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``profagent`` command line; returns its exit code."""
