"""Offline LoRA training: a company's examples become a gated, published adapter version.

data_formats.py   chat / completion / alpaca JSONL and CSV -> Examples, every bad line listed
preferences.py    OpenAI's preference format -> PreferencePairs (checked, scrubbed, split)
preference_checks.py  what inspection adds for preference files (reversed pairs, length bias)
scrub.py          every message of an example through lorag.pii (emails, phones, cards, IBANs)
dataset.py        prepare_data: validate, scrub, drop duplicates, seeded train/validation/test
examples.py       Example, DataSummary, PreparedData (the data models)
encoding.py       chat template -> token ids with the loss on assistant tokens only
model_setup.py    base model on CPU / GPU / QLoRA (nf4), LoRA on vLLM-servable modules
trainer.py        TrainConfig and the training loop (one script: read it top to bottom)
dpo.py            the DPO loss and the answer log-probabilities it is made of
dpo_trainer.py    the DPO loop (`--method dpo`; reference log-probs computed once)
parent.py         `--from NAME@vN`: the parent's shape, files in the run folder, start weights
checkpoints.py    resumable checkpoints (adapter, optimizer, RNG, TrainState)
run_card.py       run_card.json and loss.png
inference.py      batched greedy generation and answer NLL (gate, general mix)
base_answers.py   the base model's own answers, cached; the general mix
prompt_sets.py    the shipped control / general prompt lists (data/*.jsonl)
gate.py           adapter vs base: test split, control set (forgetting), golden checks
gate_report.py    GateReport (gate.json) and judging it: passed, failed, cannot judge
gate_sections.py  the report's sections (test, control, golden, preferences, parent)
preference_gate.py  a DPO run's test pairs: preference accuracy, closer to the preferred answer
parent_gate.py    the parent loaded beside the child in the gate (`--from`)
gate_text.py      the gate report for the terminal, samples side by side
golden.py         the user's golden set: prompts with keywords/regex/json_schema/forbidden
adapter_gate.py   load base + an adapter folder and gate it (training runs, `adapters gate`)
publish.py        a passing run -> next version in the registry, optional promotion
export.py         a stored version merged into the base: HF folder and/or GGUF (adapters export)
gguf_export.py    the merged Llama model and its tokenizer as one GGUF file (f16, q8_0)
ollama_modelfile.py  the Ollama Modelfile beside a GGUF (ChatML template, default system)
pipeline.py       run_job: data -> run folder -> train -> gate -> publish
raft.py           build-raft: retrieved chunks + cited answers from the knowledge base
cli.py            `lorag train ...`
errors.py         TrainError and its subclasses
"""

__all__: list[str] = []
