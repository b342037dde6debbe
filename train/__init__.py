"""Offline LoRA training: a company's examples become a gated, published adapter version.

data_formats.py   chat / completion / alpaca JSONL and CSV -> Examples, every bad line listed
scrub.py          emails, phone numbers, card numbers (Luhn), IBANs -> placeholders
dataset.py        prepare_data: validate, scrub, drop duplicates, seeded split
examples.py       Example, DataSummary, PreparedData (the data models)
encoding.py       chat template -> token ids with the loss on assistant tokens only
model_setup.py    base model on CPU / GPU / QLoRA (nf4), LoRA on vLLM-servable modules
trainer.py        TrainConfig and the training loop (one script: read it top to bottom)
checkpoints.py    resumable checkpoints (adapter, optimizer, RNG, TrainState)
run_card.py       run_card.json and loss.png
inference.py      batched greedy generation and answer NLL (gate, general mix)
base_answers.py   the base model's own answers, cached; the general mix
prompt_sets.py    the shipped control / general prompt lists (data/*.jsonl)
gate.py           adapter vs base: held-out split and control set (forgetting)
publish.py        a passing run -> next version in the registry, optional promotion
pipeline.py       run_job: data -> run folder -> train -> gate -> publish
raft.py           build-raft: retrieved chunks + cited answers from the knowledge base
cli.py            `lorag train ...`
errors.py         TrainError and its subclasses
"""

__all__: list[str] = []
