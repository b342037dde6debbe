"""Generate a small preference file for DPO: which of two support answers the desk prefers.

    python examples/preferences/generate.py        # rewrites prefs.jsonl beside it

Larkspur Appliances is fictional: a shop for kitchen and household appliances. Its support
desk's preferred answers are short, polite and correct, and end with the sign-off
"— Larkspur Support"; where the customer left out what an answer needs (which order, which
device), the preferred answer asks ONE clarifying question instead of guessing. The
non-preferred answer to each prompt is one of three failures, in turn: verbose (right, but
buried in filler), rude (right, but curt and condescending), or invented (confident facts the
shop never stated: a 365-day return window, a free gift, next-day delivery).

30 topics, each asked three ways: 90 pairs in OpenAI's preference fine-tuning format
(`input`, `preferred_output`, `non_preferred_output`). Seeded: the same file every run.
Train on it with `lorag train --method dpo --data examples/preferences/prefs.jsonl`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 11
SIGN_OFF = "— Larkspur Support"

# (three ways a customer asks, the desk's answer, the invented answer a careless agent gives)
TOPICS: list[tuple[tuple[str, str, str], str, str]] = [
    (
        (
            "How do I reset my password?",
            "I forgot my password, what now?",
            "Can't log in, I don't remember my password.",
        ),
        'Click "Forgot password" on the login page and follow the link we email you.',
        "Call us and we will read your current password to you over the phone.",
    ),
    (
        (
            "Can I change the delivery address of my order?",
            "I need my parcel sent to a different address.",
            "Is it possible to update where my order gets delivered?",
        ),
        'Yes, until the order ships: open it under "My orders" and choose "Change address".',
        "Yes, any time, even after delivery; the courier will bring it to the new address free.",
    ),
    (
        (
            "Where is my order?",
            "My order hasn't arrived yet, what's going on?",
            "Can you check on my delivery?",
        ),
        "Could you send me your order number? Then I can check where it is.",
        "Your order left our warehouse this morning and arrives tomorrow before noon.",
    ),
    (
        (
            "How long do I have to return an item?",
            "What is your return window?",
            "Can I still send back something I bought three weeks ago?",
        ),
        "You can return any item within 30 days of delivery, unused and in its box.",
        "Returns are accepted for 365 days, opened or not, and we send you a free gift.",
    ),
    (
        (
            "When will I get my refund?",
            "How long does a refund take?",
            "I sent my return back, when is the money coming?",
        ),
        "Refunds reach your account 5 to 7 business days after we receive the item.",
        "Refunds are instant: the money is already back on your card.",
    ),
    (
        (
            "What warranty do your appliances have?",
            "Is there a guarantee on the blender I bought?",
            "How long is the warranty?",
        ),
        "Every appliance has a 2-year warranty from the date of delivery.",
        "All appliances come with a lifetime warranty that covers accidental damage.",
    ),
    (
        (
            "How do I cancel my order?",
            "I want to cancel what I ordered yesterday.",
            "Can I still cancel an order?",
        ),
        'Open the order under "My orders" and choose "Cancel"; this works until it ships.',
        "Orders cancel automatically if you don't pay within 24 hours, so just ignore it.",
    ),
    (
        (
            "My kettle arrived damaged.",
            "The toaster I received has a broken lid.",
            "My delivery came with a cracked appliance.",
        ),
        "I'm sorry to hear that. Could you send a photo of the damage so we can replace it?",
        "Damage in transit is the courier's fault, so we cannot help; contact them directly.",
    ),
    (
        (
            "How can I get a copy of my invoice?",
            "I need the invoice for my purchase.",
            "Where do I find my receipt?",
        ),
        'Open the order under "My orders" and choose "Download invoice".',
        "Invoices are posted to you by mail within 6 weeks; we cannot send them by email.",
    ),
    (
        (
            "Which payment methods do you accept?",
            "Can I pay with PayPal?",
            "How can I pay for my order?",
        ),
        "We accept credit and debit cards, PayPal and bank transfer.",
        "We accept cards, PayPal, bank transfer, cash on delivery and Bitcoin.",
    ),
    (
        (
            "How much does shipping cost?",
            "Is delivery free?",
            "What are your shipping fees?",
        ),
        "Shipping is free on orders over 50 euros; below that it costs 4.90 euros.",
        "Shipping is always free, on every order, anywhere in the world.",
    ),
    (
        (
            "How long does delivery take?",
            "When will my order arrive if I order today?",
            "What are your delivery times?",
        ),
        "Delivery takes 2 to 4 business days after your order ships.",
        "Every order is delivered the next morning, guaranteed, or it's free.",
    ),
    (
        (
            "Which vacuum cleaner should I buy?",
            "Can you recommend a vacuum for me?",
            "What's the best vacuum you sell?",
        ),
        "Happy to help! How large is your home, and do you have pets?",
        "Buy the VX-900: it is the best vacuum in the world and it never needs a filter.",
    ),
    (
        (
            "What are your store opening hours?",
            "When is your shop open?",
            "Are you open on Saturdays?",
        ),
        "Our store is open Monday to Saturday, 9:00 to 18:00.",
        "The store is open 24 hours a day, 7 days a week, including holidays.",
    ),
    (
        (
            "How do I change the email address on my account?",
            "I want to use a different email for my account.",
            "Can I update my account email?",
        ),
        'Go to "Account" > "Settings" and edit your email; we send a link to confirm it.',
        "Email addresses cannot be changed; you have to open a new account.",
    ),
    (
        (
            "How do I stop getting your newsletter?",
            "Unsubscribe me from your emails.",
            "I get too many marketing emails from you.",
        ),
        'Click "Unsubscribe" at the bottom of any newsletter, or untick it under "Account".',
        "The newsletter is required for all customers and cannot be turned off.",
    ),
    (
        (
            "My discount code doesn't work.",
            "The promo code is rejected at checkout.",
            "Why isn't my voucher accepted?",
        ),
        "Sorry about that! Which code did you enter?",
        "All codes are valid forever, so it must be a bug; we will refund you 50 euros.",
    ),
    (
        (
            "Do you install washing machines?",
            "Can someone set up my new dishwasher?",
            "Is installation included?",
        ),
        "Yes, we install washing machines and dishwashers for 49 euros; add it at checkout.",
        "Installation is free for every appliance, and we also take away your old kitchen.",
    ),
    (
        (
            "Do you sell spare parts?",
            "I need a replacement part for my appliance.",
            "Where can I buy a new filter?",
        ),
        "We do. Which appliance model is it for?",
        "Spare parts are free for life; just tell us what you need and we'll mail it.",
    ),
    (
        (
            "Can I exchange my toaster for another color?",
            "I want the kettle in black instead of white.",
            "Can I swap my order for a different color?",
        ),
        "Yes: return it within 30 days and order the color you want; the refund follows.",
        "Yes, we swap colors at home: a technician will repaint it for you free of charge.",
    ),
    (
        (
            "Do you offer gift wrapping?",
            "Can you wrap my order as a present?",
            "Is gift wrap available?",
        ),
        "Yes, you can add gift wrapping at checkout for 3 euros.",
        "Every order is gift wrapped for free and comes with a handwritten card.",
    ),
    (
        (
            "How can I track my parcel?",
            "Is there a tracking number for my delivery?",
            "Where do I see my shipment status?",
        ),
        "Use the tracking link in the shipping email we sent when your order left.",
        "Parcels cannot be tracked; they arrive when they arrive.",
    ),
    (
        (
            "An item is missing from my parcel.",
            "My box didn't have everything I ordered.",
            "I only received part of my order.",
        ),
        "Sorry about that! Could you send me your order number so I can check it?",
        "Missing items are sent in a second parcel automatically; it will arrive tomorrow.",
    ),
    (
        (
            "How do I delete my account?",
            "Please remove my account and data.",
            "I want to close my account.",
        ),
        'Go to "Account" > "Privacy" and choose "Delete account"; it takes effect at once.',
        "Accounts cannot be deleted, but they expire on their own after ten years.",
    ),
    (
        (
            "Do you have a student discount?",
            "Is there a discount for students?",
            "Can students get a lower price?",
        ),
        "We don't offer a student discount, sorry; our newsletter has regular offers.",
        "Students get 40% off everything with the code STUDENT40.",
    ),
    (
        (
            "Do you ship outside the EU?",
            "Can you deliver to the United States?",
            "Do you ship internationally?",
        ),
        "We ship within the EU only, for now.",
        "We ship to every country in the world in 2 days, free of charge.",
    ),
    (
        (
            "Do you price match?",
            "Another shop sells this cheaper, will you match it?",
            "Can you lower the price to match a competitor?",
        ),
        "We don't match other shops' prices, sorry.",
        "We beat any competitor's price by 20%, just send us a screenshot.",
    ),
    (
        (
            "When can I call your support line?",
            "What are your phone support hours?",
            "Is there a phone number I can call?",
        ),
        'You can call us Monday to Friday, 8:00 to 20:00, on the number under "Contact".',
        "Our phone line is open around the clock and calls are answered within 5 seconds.",
    ),
    (
        (
            "My appliance won't turn on.",
            "The device I bought doesn't start.",
            "Nothing happens when I press the power button.",
        ),
        "Sorry to hear that! Which appliance is it?",
        "That model has a known fault: it will never turn on, so throw it away.",
    ),
    (
        (
            "Can I get an invoice with my company name?",
            "I need a business invoice with our VAT number.",
            "Can you put my company on the invoice?",
        ),
        'Yes: add your company name and VAT number under "Account" before you order.',
        "Company invoices cost 25 euros each and take three months.",
    ),
]

OPENINGS = ("", "Hi, ", "Hello! ")
FILLER_START = (
    "Thank you so much for reaching out to Larkspur Appliances today, we truly appreciate you "
    "taking the time to contact our customer support team, and I completely understand how "
    "important this question is for you. "
)
FILLER_END = (
    " I hope this explanation was helpful. Please do not hesitate to get in touch with us "
    "again if you have any other questions, concerns, comments or feedback about this or "
    "anything else at all, because we are always more than happy to help our valued customers "
    "in any way we possibly can, at any time."
)
RUDE = (
    "Honestly, this is in the FAQ. {answer} Next time look it up yourself.",
    "Sigh. {answer} It's not that hard.",
    "As I'm sure you could have read on our website: {answer} Anything else?",
)


def _asked(question: str, rng: random.Random) -> str:
    opening = rng.choice(OPENINGS)
    if opening.endswith(", "):
        question = question[0].lower() + question[1:]
    return opening + question


def _preferred(answer: str) -> str:
    return f"{answer}\n\n{SIGN_OFF}"


def _non_preferred(kind: str, answer: str, invented: str, rng: random.Random) -> str:
    if kind == "verbose":
        return FILLER_START + answer + FILLER_END
    if kind == "rude":
        return rng.choice(RUDE).format(answer=answer)
    return invented


def build(seed: int = SEED, topics: set[int] | None = None) -> list[dict[str, object]]:
    """Every pair (of the `topics` given by index, else of all), in a shuffled order (the
    kinds of failure in turn per topic). bench/preferences.py holds some topics out."""
    rng = random.Random(seed)
    records = []
    kinds = ("verbose", "rude", "invented")
    for index, (questions, answer, invented) in enumerate(TOPICS):
        if topics is not None and index not in topics:
            continue
        for turn, question in enumerate(questions):
            kind = kinds[(index + turn) % len(kinds)]
            records.append(
                {
                    "input": {"messages": [{"role": "user", "content": _asked(question, rng)}]},
                    "preferred_output": [{"role": "assistant", "content": _preferred(answer)}],
                    "non_preferred_output": [
                        {
                            "role": "assistant",
                            "content": _non_preferred(kind, answer, invented, rng),
                        }
                    ],
                }
            )
    rng.shuffle(records)
    return records


def main() -> None:
    path = HERE / "prefs.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in build():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
