"""Generate a realistic customer-support training file, with the problems real exports have.

    python examples/support/generate.py        # rewrites tickets.jsonl beside it

Nimbus Home is fictional: it sells a smart thermostat, a camera, a hub, a leak sensor and a
door lock, each known by its product code (NH-T300-EU, ...), and its agents answer in one
voice, signed "— Nimbus Home Support". The file is in OpenAI's chat format with a system
message, and is seeded: the same file every run.

It is meant for `lorag data inspect examples/support/tickets.jsonl`, so it carries, on
purpose, what a ticket export usually does:

- two tickets exported twice (exact duplicates);
- three near-duplicates: a question reworded by a word, a greeting added, a typo fixed;
- two questions answered twice, differently (the return window: 30 days or 14; whether the
  thermostat needs a C-wire);
- fragmented product codes and abbreviations (NH-T300-EU, HVAC-HP-AUX, OTA-FW);
- customers' email addresses and phone numbers in their messages;
- a few answers written without the sign-off.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7
SYSTEM = "You are the support assistant of Nimbus Home. Be brief, friendly and precise."
SIGN_OFF = "— Nimbus Home Support"

PRODUCTS = {
    "NH-T300-EU": ("thermostat", "T300 thermostat", "4.2.1", 2),
    "NH-CAM2-PRO": ("camera", "Cam 2 Pro", "2.8.0", 2),
    "NH-HUB-Z3": ("hub", "Hub Z3", "1.9.4", 3),
    "NH-SNS-W1": ("sensor", "water leak sensor", "1.1.7", 1),
    "NH-LCK-B2": ("lock", "B2 smart lock", "3.0.2", 2),
}
"""code -> (kind, name, current firmware, warranty years)"""

RESET_SECONDS = {"thermostat": 10, "camera": 15, "hub": 20, "sensor": 5, "lock": 8}
LED = {"thermostat": "orange", "camera": "blue", "hub": "white", "sensor": "green", "lock": "red"}
ERRORS = {
    "E-217": ("the device lost its connection to the Nimbus cloud", "restart your router"),
    "E-402": ("the battery is below 10%", "replace the batteries with new AA lithium ones"),
    "E-118": ("the firmware download was interrupted", "keep the device on Wi-Fi and retry"),
    "E-305": ("the device cannot reach the hub", "move the hub within 10 metres"),
}
OFFLINE = {
    "thermostat": "Yes. The T300 keeps running your schedule and you can change the "
    "temperature on the device itself; the app reconnects when the internet is back.",
    "camera": "The Cam 2 Pro keeps recording to its microSD card (up to 128 GB) and uploads "
    "the events when the connection returns. Live view needs the internet.",
    "hub": "Yes. The Hub Z3 runs your automations locally, so lights and sensors keep "
    "working; only remote access and notifications pause.",
    "sensor": "The sensor still sounds its 85 dB alarm when it detects water, but it can "
    "only notify your phone through the hub once the internet is back.",
    "lock": "Yes. The B2 smart lock opens with its keypad codes and the key, and it stores "
    "up to 200 events to sync later. Remote unlock needs the internet.",
}
OPENERS = ["", "Hi, ", "Hello! ", "Hi there. ", "Good morning, "]
CONTEXT = [
    "",
    " I bought it last week.",
    " It worked fine until yesterday.",
    " This is my second one.",
    " I already tried turning it off and on.",
]


def _question(rng: random.Random, text: str) -> str:
    return f"{rng.choice(OPENERS)}{text}{rng.choice(CONTEXT)}".strip()


def _answer(text: str, signed: bool = True) -> str:
    return f"{text}\n\n{SIGN_OFF}" if signed else text


def product_tickets(rng: random.Random) -> list[tuple[str, str]]:
    """Every product, every topic: (question, answer) pairs."""
    tickets = []
    for code, (kind, name, firmware, years) in PRODUCTS.items():
        seconds, led = RESET_SECONDS[kind], LED[kind]
        tickets += [
            (
                _question(rng, f"How do I factory reset my {code}?"),
                f"Hold the button on the back of the {name} for {seconds} seconds until the "
                f"LED blinks {led}, then add it again in the Nimbus app under Devices > Add "
                "device. Your schedules and automations stay saved in your account.",
            ),
            (
                _question(rng, f"How do I update the firmware on the {name}?"),
                f"The {code} updates itself over the air (OTA-FW) every night between 2 and 4 "
                f"am. To update now, open Devices > {name} > Firmware and tap Check for "
                f"updates. The current version is {firmware}.",
            ),
            (
                _question(rng, f"My {code} will not connect to my Wi-Fi."),
                f"The {name} only joins 2.4 GHz networks. If your router broadcasts one name "
                "for 2.4 and 5 GHz, turn on its 2.4 GHz-only setup mode for a few minutes, "
                "or set up a guest network on 2.4 GHz, then retry the pairing.",
            ),
            (
                _question(rng, f"What is the warranty on the {code}?"),
                f"The {name} has a {years}-year limited warranty from the date on your "
                "receipt. Register it in the app under Account > Warranty so we can ship a "
                "replacement without asking for the receipt.",
            ),
            (
                _question(rng, f"Does the {name} work with Google Home and Alexa?"),
                f"Yes. Link your Nimbus account in the Google Home or Alexa app and the "
                f"{code} appears with its room. Apple Home works through the Hub Z3 "
                "(NH-HUB-Z3) with firmware 1.9 or later.",
            ),
            (
                _question(rng, f"I don't get notifications from my {code}."),
                "Check that your phone allows notifications for the Nimbus app, then open "
                f"Devices > {name} > Notifications and turn on the events you want. Battery "
                "saver modes on Android can delay them by up to 15 minutes.",
            ),
            (
                _question(rng, f"I'm moving out. How do I hand the {code} over to the new owner?"),
                f"Remove it under Devices > {name} > Remove device, then factory reset it "
                f"(hold the button for {seconds} seconds). The new owner adds it to their own "
                "account; your history stays in yours.",
            ),
            (
                _question(rng, f"Where do I find the device ID of my {name}?"),
                f"In the app under Devices > {name} > Info, or on the label on the back: it "
                f"starts with {code.split('-')[1]} followed by 8 letters and digits.",
            ),
            (
                _question(rng, f"Does the {name} still work when my internet is down?"),
                OFFLINE[kind],
            ),
        ]
        for error, (meaning, fix) in sorted(ERRORS.items()):
            tickets.append(
                (
                    _question(rng, f"My {name} shows error {error}. What does it mean?"),
                    f"Error {error} means {meaning}. Please {fix}; the {code} clears the "
                    "error by itself within a minute once it is fixed. If it comes back, "
                    "reply with the device ID from Devices > Info.",
                )
            )
    return tickets


SPECIFIC = [
    (
        "Can I give a guest a temporary code for the lock?",
        "Yes. Open Devices > B2 smart lock > Codes > Add guest code and choose the days and "
        "hours it works. The NH-LCK-B2 stores up to 30 codes and logs every use.",
    ),
    (
        "The lock does not lock by itself anymore.",
        "Auto-lock may be off after a firmware update. Turn it on under Devices > B2 smart "
        "lock > Auto-lock and pick a delay between 30 seconds and 5 minutes.",
    ),
    (
        "How long are camera clips kept without a subscription?",
        "Without Nimbus Protect, event clips of up to 10 seconds are kept for 3 days. Clips "
        "on the microSD card stay until the card is full.",
    ),
    (
        "Can the camera record all the time instead of only events?",
        "Yes, continuous recording works to the microSD card in the Cam 2 Pro; cloud "
        "storage of continuous video needs the Nimbus Protect Plus plan.",
    ),
    (
        "Where should I put the leak sensor?",
        "Put the NH-SNS-W1 flat on the floor where water would collect first: under the "
        "sink, next to the water heater or behind the washing machine.",
    ),
    (
        "Do I need the hub for the leak sensor?",
        "Yes. The water leak sensor talks Zigbee, so it needs the Hub Z3 (NH-HUB-Z3) "
        "within about 10 metres, or a second hub as a repeater.",
    ),
    (
        "Do I need a hub for the thermostat?",
        "No. The T300 thermostat connects to your Wi-Fi directly. A hub is only needed for "
        "Zigbee devices such as the leak sensor and for Apple Home.",
    ),
    (
        "Can the camera tell people from cars?",
        "Yes, with Nimbus Protect the Cam 2 Pro separates people, vehicles, animals and "
        "packages, and you can turn each alert type on or off.",
    ),
]

THERMOSTAT = [
    (
        "My heat pump has an auxiliary heat stage. Which terminal do I use?",
        "Connect the auxiliary heat wire to the AUX terminal and choose the HVAC-HP-AUX "
        "profile during setup. The T300 then runs the heat pump first and brings in the "
        "auxiliary stage only when the room is more than 2 °C below the set point.",
    ),
    (
        "What does the HVAC-HP-AUX profile do?",
        "HVAC-HP-AUX is the wiring profile for heat pumps with an auxiliary or emergency heat "
        "stage. It tells the NH-T300-EU to prefer the heat pump and to use the auxiliary "
        "stage as a backup.",
    ),
    (
        "Can the thermostat learn my schedule?",
        "Yes. Turn on Smart Schedule under Devices > T300 thermostat > Schedule. It learns "
        "from your manual changes during the first 7 days and then proposes a schedule you "
        "can accept or edit.",
    ),
    (
        "Why does the thermostat show a different temperature than my old one?",
        "The T300 measures at the wall, away from the heating element, and may differ by up "
        "to 1 °C from older thermostats. You can add an offset of up to ±3 °C under "
        "Settings > Calibration.",
    ),
]

GENERAL = [
    (
        "How long do I have to return an item?",
        "You can return any Nimbus Home device within 30 days of delivery for a full refund. "
        "Start the return under Account > Orders and print the prepaid label.",
    ),
    (
        "Does the NH-T300-EU need a C-wire?",
        "Yes. The NH-T300-EU needs a C-wire (common wire) for constant power. If your system "
        "has none, order the power extender kit NH-PEK-1, which adds one at the furnace.",
    ),
    (
        "When will I get my refund?",
        "Refunds go back to your original payment method 5 to 7 business days after the "
        "returned device reaches our warehouse. You get an email when we issue it.",
    ),
    (
        "How do I turn on two-factor authentication?",
        "Open Account > Security and turn on 2FA. You can use an authenticator app or SMS "
        "codes. Keep the 10 backup codes somewhere safe in case you lose your phone.",
    ),
    (
        "How do I share access with my family?",
        "Go to Account > Home members and tap Invite. Members can control devices and see "
        "camera events, but only the owner can remove devices or change billing.",
    ),
    (
        "How much does Nimbus Protect cost?",
        "Nimbus Protect costs $4.99 a month per camera or $9.99 a month for unlimited "
        "cameras. It keeps 30 days of video history and adds person and package alerts.",
    ),
    (
        "Can I cancel Nimbus Protect at any time?",
        "Yes. Cancel under Account > Subscriptions. You keep the features until the end of "
        "the billing period, and your saved clips stay available for 30 days after that.",
    ),
    (
        "Do you ship to Switzerland?",
        "Yes, we ship to Switzerland and Norway from our EU warehouse. Delivery takes 4 to 6 "
        "business days and import duties are included in the price at checkout.",
    ),
    (
        "I forgot my password.",
        "Tap Forgot password on the sign-in screen and enter your account email. The reset "
        "link is valid for 60 minutes; check your spam folder if it does not arrive.",
    ),
    (
        "How do I change the email address on my account?",
        "Open Account > Profile > Email, enter the new address and confirm the code we send "
        "to it. Your devices and subscriptions stay linked to the account.",
    ),
    (
        "The camera night vision looks washed out.",
        "Night vision can reflect off a window or a nearby wall. Mount the Cam 2 Pro at "
        "least 1 metre from walls, never behind glass, and turn off Auto Brightness under "
        "Video settings.",
    ),
    (
        "How many devices can one hub handle?",
        "The Hub Z3 (NH-HUB-Z3) supports up to 64 Zigbee devices and 32 Thread devices. "
        "Above 40 devices we recommend a second hub for range.",
    ),
]

PII = [
    (
        "Hi, I never got my order confirmation. My email is dana.whitfield@example.com and "
        "the order number is 48213.",
        "Thanks, Dana. The confirmation went to a different address on the order. I have "
        "resent it and updated the order to your current email.",
    ),
    (
        "Please call me back about my broken lock, my number is +1 (415) 555-0142.",
        "We do not make outbound calls, but you can reach us by chat from 8 am to 8 pm. I "
        "have already started a replacement for your B2 smart lock.",
    ),
    (
        "My husband's account (m.okafor@example.net, 020 7946 0958) was locked after too "
        "many sign-in attempts.",
        "The account unlocks by itself after 30 minutes. After that, reset the password "
        "from the sign-in screen and turn on 2FA under Account > Security.",
    ),
]


REPHRASED = {
    "How long do I have to return an item?": ["What is your return policy?"],
    "When will I get my refund?": [
        "I sent the thermostat back two weeks ago and still have no refund.",
        "How long does a refund take?",
    ],
    "How do I turn on two-factor authentication?": ["Is there 2FA for the app?"],
    "How do I share access with my family?": ["Can my wife control the thermostat too?"],
    "How much does Nimbus Protect cost?": ["What's the price of the camera subscription?"],
    "Can I cancel Nimbus Protect at any time?": ["How do I stop my Protect subscription?"],
    "Do you ship to Switzerland?": ["Can I order from Norway?"],
    "I forgot my password.": [
        "I can't log in, the app says my password is wrong.",
        "Password reset please",
    ],
    "How do I change the email address on my account?": ["I have a new email address."],
    "How many devices can one hub handle?": ["Is there a limit on devices per hub?"],
    "Where should I put the leak sensor?": ["Best place for the water sensor?"],
    "Can I give a guest a temporary code for the lock?": [
        "My cleaner comes on Tuesdays, can she get her own code?"
    ],
}
"""Customers ask the same things in their own words; agents answer with the same macro."""


def base_tickets(rng: random.Random) -> list[tuple[str, str]]:
    tickets = product_tickets(rng) + SPECIFIC + THERMOSTAT + GENERAL + PII
    answers = dict(SPECIFIC + GENERAL)
    tickets += [(q, answers[asked]) for asked, others in REPHRASED.items() for q in others]
    rng.shuffle(tickets)
    return tickets


def record(question: str, answer: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def build(seed: int = SEED) -> list[dict[str, object]]:
    rng = random.Random(seed)
    tickets = base_tickets(rng)
    unsigned = set(rng.sample(range(len(tickets)), 5))  # agents who forgot the sign-off
    records = [
        record(q, _answer(a, signed=index not in unsigned)) for index, (q, a) in enumerate(tickets)
    ]
    problems = _problems(records)
    for position, extra in problems:
        records.insert(position, extra)
    return records


def _problems(records: list[dict[str, object]]) -> list[tuple[int, dict[str, object]]]:
    """(position, record) to insert, last position first, so earlier positions stay valid."""

    def find(text: str) -> dict[str, object]:
        return next(r for r in records if text in json.dumps(r))

    def user(r: dict[str, object]) -> str:
        return str(r["messages"][1]["content"])  # type: ignore[index]

    def answer(r: dict[str, object]) -> str:
        return str(r["messages"][2]["content"])  # type: ignore[index]

    reset = find("How do I factory reset my NH-CAM2-PRO?")
    warranty = find("What is the warranty on the NH-LCK-B2?")
    family = find("How do I share access with my family?")
    schedule = find("Can the thermostat learn my schedule?")
    wifi = find("My NH-HUB-Z3 will not connect")
    returns = find("How long do I have to return an item?")
    cwire = find("Does the NH-T300-EU need a C-wire?")
    fixed_typo = answer(schedule).replace("your manual changes", "your manual chagnes")
    extras = [
        (120, record(user(reset), answer(reset))),  # exported twice
        (97, record(user(warranty), answer(warranty))),
        (88, record(user(family).replace("How do I", "How can I"), answer(family))),
        (64, record("Hi, " + user(wifi), answer(wifi))),
        (41, record(user(schedule), fixed_typo)),
        (
            77,
            record(
                user(returns),
                _answer(
                    "Returns are accepted within 14 days of delivery. Start the return under "
                    "Account > Orders; we email you a prepaid label."
                ),
            ),
        ),
        (
            30,
            record(
                user(cwire),
                _answer(
                    "No, the NH-T300-EU does not need a C-wire: it charges its battery from "
                    "the heating wires. A C-wire only makes the display brighter."
                ),
            ),
        ),
    ]
    return sorted(extras, key=lambda item: -item[0])


def main() -> None:
    records = build()
    with (HERE / "tickets.jsonl").open("w", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} tickets to {HERE / 'tickets.jsonl'}")


if __name__ == "__main__":
    main()
