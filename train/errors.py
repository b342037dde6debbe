"""The errors of the training module.

    TrainError                     any error from `train/`
    ├── InvalidData        400     the training file has bad records (every one is listed)
    ├── InvalidOption      400     a training option or combination of options is wrong
    ├── RunNotFound        404     `--resume RUN_DIR` names no run (or one without checkpoints)
    ├── GateFailed         409     the gate refused the adapter; publication needs `--force`
    ├── DependencyMissing  503     an optional library (bitsandbytes, ingest) is not available
    └── TrainingFailed     500     training itself broke (e.g. the loss became NaN)

Every class has `status` (HTTP-style), `code` (snake_case) and takes a message plus an
optional `param` (the option, file or line at fault).
"""

from __future__ import annotations

__all__ = [
    "DependencyMissing",
    "GateFailed",
    "InvalidData",
    "InvalidOption",
    "RunNotFound",
    "TrainError",
    "TrainingFailed",
]


class TrainError(Exception):
    status: int = 500
    code: str = "train_error"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidData(TrainError, ValueError):
    """Bad training records; `problems` holds one "line N: reason" string per bad record."""

    status = 400
    code = "invalid_training_data"

    def __init__(
        self, message: str, *, param: str | None = None, problems: list[str] | None = None
    ):
        super().__init__(message, param=param)
        self.problems = list(problems or [])


class InvalidOption(TrainError, ValueError):
    status = 400
    code = "invalid_option"


class RunNotFound(TrainError, LookupError):
    status = 404
    code = "run_not_found"


class GateFailed(TrainError):
    status = 409
    code = "gate_failed"


class DependencyMissing(TrainError, RuntimeError):
    status = 503
    code = "dependency_missing"


class TrainingFailed(TrainError, RuntimeError):
    status = 500
    code = "training_failed"
