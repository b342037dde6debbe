"""What a training run can be told: the LoRA and optimisation knobs (`TrainConfig`, each with
its help text, which the CLI shows) and the gate's thresholds (`GateThresholds`).

Light on purpose (no torch): `lorag --help` and argument parsing import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from train.errors import InvalidOption

__all__ = [
    "DEFAULT_TARGETS",
    "DPO_LR",
    "GPU_RECIPE",
    "METHODS",
    "GateThresholds",
    "TrainConfig",
    "help_for",
    "recipe_for",
]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _knob(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# --- configuration ----------------------------------------------------------------------------


METHODS = ("sft", "dpo")
DPO_LR = 5e-4
"""`--method dpo`'s learning rate unless `--lr` is given. SFT's 1e-3 is too much for DPO on the
bundled model: two epochs on examples/preferences at 1e-3 lost 7 of the 10 control keywords
and answered with the sign-off alone; at 5e-4 none was lost (docs/benchmarks.md, DPO)."""


GPU_RECIPE: dict[str, Any] = {"lr": 2e-4, "warmup_steps": 5}
"""On CUDA, for the knobs a run is not given: the QLoRA guides' recipe, lr 2e-4 after a short
linear warmup (1-3 epochs: the default 2; nf4 with bf16 compute come from `quantization` and
`precision` 'auto'). CPUs keep the defaults measured on them (lr 1e-3, no warmup: on the
bundled 135M model and a few dozen examples, 2e-4 learns too little in the steps a CPU can
afford; docs/benchmarks.md, "Training recipes")."""


def recipe_for(device: str, method: str) -> dict[str, Any]:
    """The defaults a run on `device` ('cpu', 'cuda', 'cuda:N') with `method` starts from,
    before the options it was given."""
    chosen = dict(GPU_RECIPE) if device.startswith("cuda") else {}
    if method == "dpo":
        chosen["lr"] = DPO_LR
    return chosen


@dataclass
class TrainConfig:
    # what is learned
    method: str = _knob(
        "sft",
        "'sft': learn the answers of chat examples; 'dpo': learn to prefer preferred_output "
        "over non_preferred_output (OpenAI's preference format; Direct Preference Optimization)",
    )
    beta: float = _knob(
        0.1,
        "DPO: how strongly the adapter is held to its reference (the base, or the --from "
        "version); higher stays closer",
    )
    sft_weight: float = _knob(
        0.0,
        "DPO: weight of an added SFT loss on the preferred answers (TRL's rpo_alpha), which "
        "keeps them likely, not only likelier than the others; 0 = pure DPO",
    )
    # LoRA
    rank: int = _knob(16, "LoRA rank r (must not exceed the server's max LoRA rank)")
    alpha: int = _knob(32, "LoRA alpha; the update is scaled by alpha / rank")
    dropout: float = _knob(0.05, "dropout on the LoRA input")
    target_modules: tuple[str, ...] = _knob(DEFAULT_TARGETS, "linear layers that get LoRA")
    # optimization
    epochs: int = _knob(2, "passes over the training split")
    max_steps: int | None = _knob(None, "stop after this many optimizer steps (default: epochs)")
    batch_size: int = _knob(8, "examples per micro-batch")
    grad_accum: int = _knob(1, "micro-batches per optimizer step")
    lr: float = _knob(1e-3, "peak learning rate (AdamW); on a GPU the QLoRA recipe's 2e-4")
    weight_decay: float = _knob(0.0, "AdamW weight decay")
    warmup_steps: int = _knob(
        0, "linear warmup steps before the peak learning rate; on a GPU the QLoRA recipe's 5"
    )
    lr_schedule: str = _knob("cosine", "after warmup: 'cosine' (to min_lr_ratio) or 'constant'")
    min_lr_ratio: float = _knob(0.1, "cosine floor, as a fraction of lr")
    max_grad_norm: float = _knob(1.0, "gradient clipping norm (0 = off)")
    max_seq_len: int = _knob(1024, "longer examples are cut (and counted in the run card)")
    seed: int = _knob(0, "seed for LoRA init, dropout, data order and the split")
    # evaluation, early stopping, checkpoints
    eval_every: int = _knob(0, "also evaluate every N steps (0 = only at epoch ends)")
    early_stopping_patience: int = _knob(2, "stop after N evaluations without improvement (0=off)")
    restore_best: bool = _knob(True, "the result is the adapter at the best validation loss")
    save_every: int = _knob(0, "also checkpoint every N steps (0 = only at epoch ends)")
    keep_checkpoints: int = _knob(2, "newest checkpoints kept (0 = all)")
    # hardware
    device: str = _knob("auto", "'auto' (cuda if present, else cpu), 'cpu', 'cuda', 'cuda:N'")
    precision: str = _knob(
        "auto",
        "'auto' (bf16 autocast on CUDA and on CPUs with native bf16, fp32 elsewhere: emulated "
        "bf16 is several times slower), 'bf16' or 'fp32'",
    )
    quantization: str = _knob("auto", "'auto' (nf4 QLoRA on CUDA, none on CPU), 'nf4', 'none'")
    gradient_checkpointing: bool = _knob(False, "trade compute for memory (long sequences, GPU)")
    threads: int | None = _knob(None, "torch CPU threads (default: torch's choice)")

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        checks = {
            "method": self.method in METHODS,
            "beta": self.beta > 0,
            "sft_weight": self.sft_weight >= 0,
            "rank": self.rank >= 1,
            "alpha": self.alpha >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "epochs": self.epochs >= 1,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "lr_schedule": self.lr_schedule in ("cosine", "constant"),
            "precision": self.precision in ("auto", "bf16", "fp32"),
            "quantization": self.quantization in ("auto", "nf4", "none"),
            "max_seq_len": self.max_seq_len >= 16,
            "target_modules": bool(self.target_modules),
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidOption(f"bad value for {name}: {getattr(self, name)!r}", param=name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidOption(f"unknown training options: {sorted(unknown)}", param="config")
        return cls(**data)


def help_for(name: str) -> str:
    """The help text of one TrainConfig knob (the CLI reuses it)."""
    text: str = next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)
    return text


@dataclass(frozen=True)
class GateThresholds:
    max_nll_rise: float = 0.25  # nats/token on the base's own control answers
    max_keywords_lost: int = 0  # control keywords the base had that the adapter may lose
    min_val_loss_gain: float = 0.0  # test loss: base - adapter must be at least this
    max_match_drop: float = 0.0  # short answers: adapter's match rate may fall this much
    short_answer_words: int = 12  # references this short get generation checks
    max_generations: int = 32  # test prompts generated for matches and samples
    # Fewer test examples and the gate cannot judge: one answer would move the short-answer
    # match rate by more than 20 points, and one odd example could decide the loss verdict.
    # 10% of a 50-example file, the smallest a LoRA is worth training on (docs/benchmarks.md).
    min_test_examples: int = 5
    max_golden_failures: int = 0  # golden checks the adapter may fail
    # `--from`: the parent's golden checks the parent passes and the adapter may fail
    max_golden_regressions: int = 0
    # DPO: test pairs whose margin (preferred minus non-preferred log-probability) the adapter
    # must widen over the reference's; 0.5 is chance
    min_preference_accuracy: float = 0.6
    max_closer_drop: float = 0.0  # DPO: "answer closer to the preferred one" may fall this much
    max_repetition_rise: float = 0.1  # DPO: the share of looping answers may rise this much

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
