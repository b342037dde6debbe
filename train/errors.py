"""The errors of the training module, on `lorag.errors`.

    lorag.errors.LoragError
    └── TrainError                     500  any error from `train/`
        ├── InvalidData        400     the training file has bad records (every one is listed)
        ├── InvalidOption      400     a training option or combination of options is wrong
        ├── RunNotFound        404     `--resume RUN_DIR` names no run (or one without checkpoints)
        ├── GateFailed         409     the gate refused the adapter; publication needs `--force`
        ├── DependencyMissing  503     an optional library (bitsandbytes, ingest) is missing
        └── TrainingFailed     500     training itself broke (e.g. the loss became NaN)

Each is also the `lorag.errors` class of its status (`InvalidData` an `InvalidRequest`, ...);
every one takes a message plus an optional `param` (the option, file or line at fault).
"""

from __future__ import annotations

from lorag import errors as core

__all__ = [
    "DependencyMissing",
    "GateFailed",
    "InvalidData",
    "InvalidOption",
    "RunNotFound",
    "TrainError",
    "TrainingFailed",
]


class TrainError(core.LoragError):
    status = 500
    code = "train_error"


class InvalidData(core.InvalidRequest, TrainError):
    """Bad training records; `problems` holds one "line N: reason" string per bad record."""

    status = 400
    code = "invalid_training_data"

    def __init__(
        self, message: str, *, param: str | None = None, problems: list[str] | None = None
    ):
        super().__init__(message, param=param)
        self.problems = list(problems or [])


class InvalidOption(core.InvalidRequest, TrainError):
    status = 400
    code = "invalid_option"


class RunNotFound(core.NotFound, TrainError):
    status = 404
    code = "run_not_found"


class GateFailed(core.Conflict, TrainError):
    status = 409
    code = "gate_failed"


class DependencyMissing(core.Unavailable, TrainError, RuntimeError):
    status = 503
    code = "dependency_missing"


class TrainingFailed(core.ServerError, TrainError, RuntimeError):
    status = 500
    code = "training_failed"
