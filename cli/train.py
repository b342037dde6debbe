"""The `lorag train` command (and `lorag train build-raft`).

    lorag train --data FILE --name ADAPTER [options]     prepare, train, gate, publish
    lorag train --resume RUN_DIR --name ADAPTER          continue a run (then gate, publish)
    lorag train --from NAME@vN --data FILE               continue a published version
    lorag train --method dpo --data PREFS [--from NAME@vN] [--beta B]   preference tuning
    lorag train build-raft QA.jsonl --tenant T --out FILE

`register(commands)` adds the command to the root parser (`cli.main`); handlers take
`(args, settings)` and return the exit code: 0 done, 1 the gate failed with `--no-publish`.
Errors are `train.errors` exceptions (the root prints `error: <message>`, exit 2).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.data import add_format_options
from lorag.prompting import DEFAULT_TEMPLATE as TEMPLATE
from lorag.prompting import TEMPLATES
from lorag.settings import Settings
from train.config import DPO_LR, METHODS, GateThresholds, TrainConfig, help_for, recipe_for
from train.errors import InvalidOption

if TYPE_CHECKING:
    from cli.arguments import Commands
    from train.parent import ParentVersion

__all__ = ["register"]

# TrainConfig knobs with a command-line option: (option, field, type)
_KNOBS: tuple[tuple[str, str, type], ...] = (
    ("--epochs", "epochs", int),
    ("--max-steps", "max_steps", int),
    ("--lr", "lr", float),
    ("--batch-size", "batch_size", int),
    ("--grad-accum", "grad_accum", int),
    ("--warmup-steps", "warmup_steps", int),
    ("--lr-schedule", "lr_schedule", str),
    ("--max-seq-len", "max_seq_len", int),
    ("--seed", "seed", int),
    ("--rank", "rank", int),
    ("--alpha", "alpha", int),
    ("--dropout", "dropout", float),
    ("--eval-every", "eval_every", int),
    ("--save-every", "save_every", int),
    ("--early-stopping-patience", "early_stopping_patience", int),
    ("--device", "device", str),
    ("--precision", "precision", str),
    ("--quantization", "quantization", str),
    ("--threads", "threads", int),
    ("--beta", "beta", float),
    ("--sft-weight", "sft_weight", float),
)


def register(commands: Commands) -> None:
    """Add `train` (with its optional `build-raft` sub-command) to the root parser."""
    parser = commands.add_parser(
        "train",
        help="train a LoRA adapter on your examples, gate it, publish it to the registry",
        description=(
            "Turn a file of examples into the next version of a named adapter: validate and "
            "scrub the data, mix in the base model's own answers to general prompts, train "
            "LoRA (QLoRA on a GPU), gate the result against the base (a test split training "
            "never saw, a control set, your golden checks), and publish it if the gate "
            "passes. Runs live under "
            "LORAG_DATA_DIR/runs/<run_id>/. "
            "--from NAME@vN continues a published version (its weights, its LoRA shape, its "
            "owner; the gate compares with it as well as with the base). --method dpo learns "
            "from preference pairs (OpenAI's preference format) instead of examples."
        ),
    )
    method = parser.add_argument_group("what to learn, from where")
    method.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help=f"{help_for('method')} (default: sft; with --resume: the run's)",
    )
    method.add_argument(
        "--from",
        dest="from_version",
        metavar="NAME@vN",
        help="continue this published version: start from its weights with its rank, alpha "
        "and target modules, publish as the next version of NAME (unless --name), owned by its "
        "owner; the gate also compares with it (its test loss, its recorded golden checks, "
        "and for DPO it is the reference)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="training file (JSONL or CSV; with --method dpo: preference pairs, JSONL)",
    )
    add_format_options(data)
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of examples held out for validation: early stopping and the choice of "
        "checkpoint (default: 0.1)",
    )
    data.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of examples held out for the gate alone (never trained on, never used "
        f"to pick a checkpoint); below {GateThresholds.min_test_examples} test examples the "
        "gate cannot judge and publishing needs --force (default: 0.1)",
    )
    data.add_argument(
        "--no-scrub",
        action="store_true",
        help="keep emails, phone numbers, card numbers and IBANs as they are",
    )
    data.add_argument(
        "--no-inspect",
        action="store_true",
        help="skip the data inspection that runs first (`lorag data inspect`: its errors, such "
        "as one prompt with conflicting answers, otherwise stop training)",
    )
    data.add_argument(
        "--no-general-mix",
        action="store_true",
        help="do not mix the base's own answers to general prompts into training",
    )
    data.add_argument(
        "--general-prompts",
        type=Path,
        metavar="FILE",
        help="your own general prompt list (JSONL with 'prompt'; default: the shipped list)",
    )

    hyper = parser.add_argument_group("training (with --resume: overrides the run's options)")
    for option, name, kind in _KNOBS:
        hyper.add_argument(option, dest=name, type=kind, default=None, help=_knob_help(name))
    hyper.add_argument(
        "--target-modules",
        metavar="A,B,...",
        default=None,
        help=_knob_help("target_modules").replace(" (default", ", comma-separated (default"),
    )
    hyper.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest checkpoint",
    )

    gate = parser.add_argument_group("gate")
    gate.add_argument(
        "--control",
        type=Path,
        metavar="FILE",
        help="your own control prompts (JSONL: prompt, optional expect; default: shipped)",
    )
    gate.add_argument(
        "--golden",
        type=Path,
        metavar="FILE",
        help="golden prompts with checks the adapter must pass whatever the base does "
        "(JSONL: prompt or messages, and keywords, regex, json_schema, forbidden)",
    )
    gate.add_argument(
        "--max-nll-rise",
        type=float,
        default=GateThresholds.max_nll_rise,
        help="allowed rise (nats/token) of the NLL of the base's own control answers "
        f"(default: {GateThresholds.max_nll_rise})",
    )
    gate.add_argument(
        "--max-keywords-lost",
        type=int,
        default=GateThresholds.max_keywords_lost,
        help=f"control keywords the adapter may lose (default: {GateThresholds.max_keywords_lost})",
    )

    publish = parser.add_argument_group("publish")
    publish.add_argument("--name", help="adapter name in the registry (the new version's name)")
    publish.add_argument("--no-publish", action="store_true", help="train and gate only")
    publish.add_argument("--force", action="store_true", help="publish even if the gate fails")
    publish.add_argument(
        "--promote",
        metavar="TENANT:MODE",
        help="point this tenant's mode at the new version at once",
    )
    owner = publish.add_mutually_exclusive_group()
    owner.add_argument(
        "--owner",
        metavar="TENANT",
        help="tenant that owns the adapter; no other tenant can use it (default: the --promote "
        "tenant, since the adapter learned that tenant's data; shared without --promote)",
    )
    owner.add_argument(
        "--shared",
        action="store_true",
        help="publish the adapter shared with every tenant, even with --promote (only for "
        "data any tenant may see)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_train)

    actions = parser.add_subparsers(dest="train_command", metavar="COMMAND", required=False)
    raft = actions.add_parser(
        "build-raft",
        help="build RAFT training examples from the tenant's own knowledge base (question + "
        "retrieved chunks -> cited answer)",
        description=(
            "For each question/answer pair, retrieve chunks for the tenant from the knowledge "
            "base and write a chat example whose prompt carries the right chunk among "
            "distractors (sometimes none) and whose answer cites the right source with [n]. "
            "The output holds the tenant's own documents: train on it with `lorag train --data "
            "OUT --promote TENANT:MODE`, which keeps the adapter the tenant's (never --shared)."
        ),
    )
    raft.add_argument(
        "qa",
        type=Path,
        metavar="QA.jsonl",
        help="JSONL with question, answer and optional source/document",
    )
    raft.add_argument(
        "--tenant",
        required=True,
        help="tenant whose knowledge base to search (the output holds its documents)",
    )
    raft.add_argument("--out", required=True, type=Path, help="output chat JSONL file")
    raft.add_argument("--top-k", type=int, default=4, help="chunks per prompt (default: 4)")
    raft.add_argument(
        "--no-context-fraction",
        type=float,
        default=0.1,
        help="share of examples without the right chunk, answered 'not found' (default: 0.1)",
    )
    raft.add_argument("--seed", type=int, default=0, help="seed for shuffling chunks")
    raft.add_argument(
        "--budget-tokens",
        type=int,
        default=None,
        metavar="N",
        help="token budget of each prompt (sources, question, chat template); default: what "
        "the gateway gives a mode's sources, LORAG_MAX_MODEL_LEN less the mode's answer "
        "reserve (2048 - 256 = 1792 by default), so the adapter trains on the prompts it will "
        "be served. Sources that do not fit are left out, weakest first",
    )
    raft.add_argument(
        "--template",
        default=TEMPLATE,
        choices=sorted(TEMPLATES),
        help="prompt template of the sources, as the hybrid mode will use "
        f"(default: {TEMPLATE}, a mode's default)",
    )
    raft.set_defaults(handler=_build_raft)


def _knob_help(name: str) -> str:
    default = next(f.default for f in fields(TrainConfig) if f.name == name)
    if default is None or default is MISSING:
        return help_for(name)
    shown = ",".join(default) if isinstance(default, tuple) else default
    if name == "lr":
        shown = f"{shown}; {DPO_LR} with --method dpo"
    return f"{help_for(name)} (default: {shown})"


def _train_config(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig options given on the command line (None = not given)."""
    given = {name: getattr(args, name) for _, name, _ in _KNOBS if getattr(args, name) is not None}
    if args.target_modules:
        given["target_modules"] = tuple(m.strip() for m in args.target_modules.split(",") if m)
    if args.method is not None:
        given["method"] = args.method
    return given


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from cli.data import inspect_before_training
    from cli.train_start import check_method, run_parent
    from lorag.base_model import prepare_bundled_model, resolve_base_model
    from train.model_setup import pick_device
    from train.pipeline import DataOptions, GateOptions, resume_config, run_job
    from train.prompt_sets import CONTROL_PROMPTS, GENERAL_PROMPTS

    if args.resume is not None and args.data is not None:
        raise InvalidOption("--resume continues a run with its own data; drop --data")
    if args.resume is None and args.data is None:
        raise InvalidOption("give the training data: lorag train --data FILE --name ADAPTER")
    parent, overrides = run_parent(args, settings, _train_config(args))
    if args.resume is not None:
        cfg, base_model = resume_config(args.resume, overrides)
    else:
        device = pick_device(overrides.get("device", "auto"))
        overrides = {**recipe_for(device, overrides.get("method", "sft")), **overrides}
        cfg = TrainConfig(**overrides)
        if settings.base_model is None:
            prepare_bundled_model(settings)
        base_model = resolve_base_model(settings)
    check_method(args, cfg)
    args.method = cfg.method
    if parent is not None and not args.name:
        args.name = parent.name  # the next version of the continued adapter

    publish = None
    if not args.no_publish:
        publish = _publisher(args, settings, cfg, parent)
    if args.data is not None and not args.no_inspect:
        inspect_before_training(args, base_model, cfg.max_seq_len)
    data = None
    if args.data is not None:
        data = DataOptions(
            args.data,
            data_format=args.data_format,
            prompt_column=args.prompt_column,
            completion_column=args.completion_column,
            scrub=not args.no_scrub,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            general_mix=not args.no_general_mix,
            general_prompts=args.general_prompts or GENERAL_PROMPTS,
        )
    gate = GateOptions(
        control=args.control or CONTROL_PROMPTS,
        golden=args.golden,
        thresholds=GateThresholds(
            max_nll_rise=args.max_nll_rise, max_keywords_lost=args.max_keywords_lost
        ),
    )
    result = run_job(
        cfg,
        base_model=base_model,
        runs_dir=settings.runs_dir,
        cache_dir=settings.data_dir / "cache" / "train",
        data=data,
        resume=args.resume,
        gate=gate,
        publish=publish,
        run_name=args.name,
        progress=not args.quiet,
        say=print,
        parent=parent if args.resume is None else None,
    )
    if result.published is not None:
        version = result.published.version
        continued = version.metrics.get("parent")
        continues = f", continuing {continued}" if continued else ""
        print(f"published {version.served_name} (origin {version.origin}{continues})")
        if result.published.mode is not None:
            mode = result.published.mode
            print(f"promoted: {mode.qualified_name} -> {mode.target}")
    return 0 if result.gate.passed or result.published is not None else 1


def _publisher(
    args: argparse.Namespace, settings: Settings, cfg: TrainConfig, parent: ParentVersion | None
) -> Any:
    """Check the publish options now (before training) and return the publish step."""
    from adapters.from_settings import base_model_info, open_registry
    from train.publish import check_publish_options, publish_owner, publish_run

    if not args.name:
        raise InvalidOption("--name ADAPTER is required to publish (or pass --no-publish)")
    if cfg.rank > settings.max_lora_rank:
        raise InvalidOption(
            f"--rank {cfg.rank} exceeds the server's max LoRA rank {settings.max_lora_rank} "
            "(LORAG_MAX_LORA_RANK)",
            param="rank",
        )
    registry = open_registry(settings)
    owner = publish_owner(promote=args.promote, owner=args.owner, shared=args.shared, parent=parent)
    check_publish_options(registry, args.name, args.promote, owner=owner)
    if parent is not None and parent.owner is not None:
        print(f"the adapter will be owned by tenant {owner}, as {parent.ref} is")
    elif owner is not None and args.owner is None:
        print(f"the adapter will be owned by tenant {owner} (--shared to share it)")
    base = base_model_info(settings)

    def publish(run_dir: Path) -> Any:
        return publish_run(
            run_dir,
            registry=registry,
            base=base,
            max_rank=settings.max_lora_rank,
            name=args.name,
            promote=args.promote,
            force=args.force,
            owner=owner,
        )

    return publish


def _build_raft(args: argparse.Namespace, settings: Settings) -> int:
    from train.raft import build_raft_file

    summary = build_raft_file(
        settings,
        args.qa,
        tenant=args.tenant,
        out=args.out,
        top_k=args.top_k,
        no_context_fraction=args.no_context_fraction,
        seed=args.seed,
        template_version=args.template,
        budget_tokens=args.budget_tokens,
    )
    print(summary)
    if summary.longest_prompt_tokens > TrainConfig().max_seq_len:
        print(
            f"note: the longest prompt has {summary.longest_prompt_tokens} tokens; train with "
            f"--max-seq-len above it (default {TrainConfig().max_seq_len}), or examples are cut"
        )
    return 0
