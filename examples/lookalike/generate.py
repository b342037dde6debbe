"""Generate the look-alike evaluation set: product sheets of one template that differ only in
their values, and questions about one field of one product each.

    python examples/lookalike/generate.py        # rewrites docs/ and qa.jsonl beside it

Every product is fictional (the bundled model cannot know any answer), two products share
each brand, and every asked field sits in a section with other values of the same kind
(pressure beside flow, weight and power; the part code beside the price and minimum order;
the warranty beside the seal cover), so a source about another product, or the wrong line
of the right one, gives a plausible wrong answer. Seeded: the same files every run. No
number is used twice, and each expected answer carries its unit ("412 kPa", "27 months"), so
"the expected answer is in the reply" is unambiguous.

Part codes read `3148-TO`, not `TO-3148`: given only the line `- Part code: TO-3148`, the
bundled 135M model answers "3148" (or the price on the next line) whatever the retrieval
does, so such codes would measure the model's copying, not which sources reach it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 13

BRANDS = ["Torvane", "Quillmar", "Brastow", "Elvenor", "Kestrane", "Mordell", "Vantrix", "Ossary"]
MODELS = ["A", "K", "R", "S", "T", "V", "X", "Z"]
KINDS = ["circulation pump", "dosing pump", "booster pump", "transfer pump"]
USES = ["district heating", "chemical dosing", "irrigation", "fire sprinklers", "breweries"]
CITIES = [
    "Varnholm",
    "Quessant",
    "Ostrava Nova",
    "Lindqvarn",
    "Peltamo",
    "Ruskeva",
    "Dravik",
    "Solmund",
    "Tarvello",
    "Ekvila",
    "Brunnhal",
    "Cazzorin",
    "Mirovel",
    "Hessegard",
    "Orlunde",
    "Velanthe",
]
FIRST = [
    "Ottilie",
    "Bram",
    "Sunniva",
    "Teodor",
    "Ilka",
    "Joren",
    "Marit",
    "Aurel",
    "Neve",
    "Casimir",
    "Liesl",
    "Halvor",
    "Wren",
    "Ysolde",
    "Evander",
    "Greta",
]
LAST = [
    "Brandvik",
    "Castellane",
    "Dumorne",
    "Everloh",
    "Falkstad",
    "Gromwell",
    "Hasselby",
    "Istvanek",
    "Jorvik",
    "Kallendar",
    "Lutwidge",
    "Mervale",
    "Norrholt",
    "Oskarnes",
    "Pellerin",
    "Quarmby",
]

TEMPLATE = """# {name}

## Overview
The {name} is a {kind} made by {brand} for {use}.

## Specifications
- Maximum pressure: {pressure} kPa
- Flow rate: {flow} litres per minute
- Weight: {weight} kg
- Rated power: {power} W

## Ordering
- Part code: {code}
- List price: {price} euros
- Minimum order: {moq} units

## Warranty
The {name} carries a warranty of {warranty} months from delivery. Seals are covered for \
{seals} months.

## Production
Built at the plant in {city}. Lead engineer: {engineer}.
"""

QUESTIONS = [
    ("pressure", "What is the maximum pressure of the {name}?", "{pressure} kPa"),
    ("code", "What is the part code of the {name}?", "{code}"),
    ("warranty", "How long is the warranty of the {name}?", "{warranty} months"),
    ("city", "In which city is the {name} built?", "{city}"),
    ("engineer", "Who is the lead engineer of the {name}?", "{engineer}"),
]


def _unique_numbers(
    rng: random.Random, count: int, low: int, high: int, taken: set[int]
) -> list[int]:
    """`count` numbers in [low, high] that no other field of any sheet uses."""
    chosen = rng.sample([n for n in range(low, high + 1) if n not in taken], count)
    taken.update(chosen)
    return chosen


def products(seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    taken: set[int] = set()
    count = len(BRANDS) * 2
    pressures = _unique_numbers(rng, count, 210, 980, taken)
    flows = _unique_numbers(rng, count, 11, 99, taken)
    powers = _unique_numbers(rng, count, 1100, 9900, taken)
    prices = _unique_numbers(rng, count, 1100, 9900, taken)
    codes = _unique_numbers(rng, count, 1000, 9999, taken)
    warranties = _unique_numbers(rng, count, 13, 60, taken)
    seals = _unique_numbers(rng, count, 61, 99, taken)
    cities, first, last = CITIES[:], FIRST[:], LAST[:]
    rng.shuffle(cities), rng.shuffle(first), rng.shuffle(last)
    sheets = []
    for i in range(count):
        brand = BRANDS[i // 2]
        model = f"{MODELS[(i * 3) % len(MODELS)]}{'-' if i % 2 else ''}{rng.randint(2, 9)}{i % 2}"
        sheets.append(
            {
                "name": f"{brand} {model}",
                "slug": f"{brand}-{model}".lower().replace(" ", "-"),
                "brand": brand,
                "kind": KINDS[i % len(KINDS)],
                "use": USES[i % len(USES)],
                "pressure": str(pressures[i]),
                "flow": str(flows[i]),
                "weight": f"{rng.randint(3, 29)}.{rng.randint(1, 9)}",
                "power": str(powers[i]),
                "code": f"{codes[i]}-{brand[:2].upper()}",
                "price": str(prices[i]),
                "moq": str(rng.choice([5, 8, 12, 15])),
                "warranty": str(warranties[i]),
                "seals": str(seals[i]),
                "city": cities[i],
                "engineer": f"{first[i]} {last[i]}",
            }
        )
    return sheets


def main() -> None:
    docs = HERE / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("*.md"):
        old.unlink()
    rows = []
    for sheet in products():
        name = f"{sheet['slug']}.md"
        (docs / name).write_text(TEMPLATE.format(**sheet), encoding="utf-8")
        for field, question, answer in QUESTIONS:
            rows.append(
                {
                    "question": question.format(**sheet),
                    "answer": answer.format(**sheet),
                    "doc_id": name,
                    "field": field,
                }
            )
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (HERE / "qa.jsonl").write_text(lines, encoding="utf-8")
    print(f"wrote {len(products())} sheets to {docs} and {len(rows)} questions to qa.jsonl")


if __name__ == "__main__":
    main()
