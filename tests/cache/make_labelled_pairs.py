"""Write `labelled_pairs.tsv`: request pairs labelled as the same request or a near miss.

Run: python tests/cache/make_labelled_pairs.py (rewrites the file; the output depends only
on this script, so running it again gives the same bytes).

The procedure: each of the intents below has three wordings of one request with three
slots, a number `{n}`, a name `{name}` and a polarity `{p}` (a phrase and its negation).
For each intent, `FILLS` random fills (seeded, so deterministic) each give five pairs,
the first text always wording A of the fill:

- `paraphrase` (the same request): wording B with the same slots;
- `variant` (the same request): wording A with other case, spacing and punctuation;
- `number` (a near miss): wording A with another number;
- `name` (a near miss): wording A with another name;
- `negation` (a near miss): wording A with the polarity flipped.

A semantic cache should hit on the first two kinds and must not on the last three: such a
hit hands one request another request's answer.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs

FILLS = 12
SEED = 13
PATH = Path(__file__).with_name("labelled_pairs.tsv")

CITIES = ["Paris", "Rome", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague", "Dublin", "Oslo"]
PEOPLE = ["Alice", "Bob", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines"]
PRODUCTS = ["the X200 laptop", "the Aero headphones", "the Nova phone", "the Titan monitor"]
PRODUCTS += ["the Zen keyboard", "the Orbit speaker", "the Pulse watch", "the Vista tablet"]
TEAMS = ["billing", "marketing", "support", "sales", "design", "legal", "finance", "research"]


@attrs.frozen
class Intent:
    wordings: tuple[str, str, str]
    names: list[str]
    polarity: tuple[str, str]
    numbers: tuple[int, int]


INTENTS = [
    Intent(
        (
            "book a table for {n} people at {name}'s restaurant {p} a window seat",
            "reserve a table at {name}'s restaurant for {n} guests {p} a window seat",
            "I need a dinner reservation for {n} at {name}'s restaurant {p} a window seat",
        ),
        PEOPLE,
        ("with", "without"),
        (2, 12),
    ),
    Intent(
        (
            "book a flight to {name} for {n} passengers {p} checked luggage",
            "I want plane tickets to {name} for {n} people {p} checked luggage",
            "find flights to {name} for a group of {n} {p} checked luggage",
        ),
        CITIES,
        ("with", "without"),
        (1, 9),
    ),
    Intent(
        (
            "{p} email alerts for orders over {n} dollars from {name}",
            "please {p} the email notifications for {name} orders above {n} dollars",
            "{p} emailing me when {name} places an order of more than {n} dollars",
        ),
        PEOPLE,
        ("turn on", "turn off"),
        (10, 900),
    ),
    Intent(
        (
            "{p} two-factor authentication for {name}'s account after {n} failed logins",
            "for {name}'s account, {p} 2FA once there are {n} failed sign-ins",
            "{p} two-step verification on {name}'s account after {n} bad login attempts",
        ),
        PEOPLE,
        ("enable", "disable"),
        (2, 10),
    ),
    Intent(
        (
            "what is the weather in {name} in {n} days, {p} the wind forecast",
            "show me the forecast for {name} {n} days from now {p} the wind forecast",
            "how will the weather be in {name} in {n} days time, {p} the wind forecast",
        ),
        CITIES,
        ("including", "excluding"),
        (1, 14),
    ),
    Intent(
        (
            "order {n} units of {name} {p} gift wrapping",
            "I'd like to buy {n} of {name} {p} gift wrapping",
            "place an order for {n} pieces of {name} {p} gift wrapping",
        ),
        PRODUCTS,
        ("with", "without"),
        (1, 50),
    ),
    Intent(
        (
            "is {name} in stock in {n} stores, {p} online stock",
            "check whether {n} shops have {name} available, {p} online stock",
            "do {n} of your stores carry {name}, {p} online stock",
        ),
        PRODUCTS,
        ("counting", "not counting"),
        (2, 40),
    ),
    Intent(
        (
            "schedule a meeting with {name} for {n} minutes that is {p} recorded",
            "set up a {n} minute meeting with {name} that is {p} recorded",
            "put a {n}-minute call with {name} on my calendar that is {p} recorded",
        ),
        PEOPLE,
        ("to be", "not to be"),
        (15, 120),
    ),
    Intent(
        (
            "give the {name} team access to {n} dashboards {p} edit rights",
            "share {n} dashboards with the {name} team {p} edit rights",
            "let the {name} team see {n} of the dashboards {p} edit rights",
        ),
        TEAMS,
        ("with", "without"),
        (2, 30),
    ),
    Intent(
        (
            "refund order {n} for {name} {p} the shipping fee",
            "please give {name} their money back for order {n} {p} the shipping fee",
            "issue {name} a refund on order number {n} {p} the shipping fee",
        ),
        PEOPLE,
        ("including", "excluding"),
        (1000, 9999),
    ),
    Intent(
        (
            "translate the {name} contract into {n} languages {p} the appendix",
            "I need the {name} contract translated to {n} languages {p} the appendix",
            "get the contract for {name} into {n} different languages {p} the appendix",
        ),
        TEAMS,
        ("with", "without"),
        (2, 20),
    ),
    Intent(
        (
            "set the thermostat in {name}'s office to {n} degrees {p} the night mode",
            "change {name}'s office temperature to {n} degrees {p} the night mode",
            "make {name}'s office {n} degrees warm {p} the night mode",
        ),
        PEOPLE,
        ("using", "not using"),
        (16, 28),
    ),
    Intent(
        (
            "summarize the last {n} emails from {name} {p} the attachments",
            "give me a summary of {name}'s {n} most recent emails {p} the attachments",
            "what did {name} say in the last {n} emails, {p} the attachments",
        ),
        PEOPLE,
        ("including", "ignoring"),
        (2, 50),
    ),
    Intent(
        (
            "rent a car in {name} for {n} days {p} full insurance",
            "I need a rental car in {name} for {n} days {p} full insurance",
            "hire a car at {name} for {n} days {p} full insurance",
        ),
        CITIES,
        ("with", "without"),
        (1, 30),
    ),
    Intent(
        (
            "upgrade {name}'s plan to {n} seats and {p} the annual discount",
            "move {name} to a plan with {n} seats and {p} the annual discount",
            "change the subscription of {name} to {n} seats and {p} the annual discount",
        ),
        PEOPLE,
        ("apply", "do not apply"),
        (2, 200),
    ),
    Intent(
        (
            "list hotels in {name} under {n} euros a night {p} breakfast",
            "show me hotels in {name} that cost less than {n} euros per night {p} breakfast",
            "find a hotel in {name} below {n} euros a night {p} breakfast",
        ),
        CITIES,
        ("with", "without"),
        (40, 400),
    ),
    Intent(
        (
            "remind {name} to submit the report in {n} hours and {p} copy the manager",
            "send {name} a reminder about the report in {n} hours and {p} copy the manager",
            "in {n} hours, nudge {name} to hand in the report and {p} copy the manager",
        ),
        PEOPLE,
        ("do", "do not"),
        (1, 48),
    ),
    Intent(
        (
            "compare {name} with the {n} best sellers {p} refurbished models",
            "how does {name} stack up against the top {n} sellers, {p} refurbished models",
            "put {name} side by side with the {n} most popular products {p} refurbished models",
        ),
        PRODUCTS,
        ("including", "excluding"),
        (2, 20),
    ),
    Intent(
        (
            "cancel {name}'s subscription after {n} months and {p} refund the last payment",
            "end the subscription for {name} in {n} months and {p} refund the last payment",
            "stop {name}'s plan once {n} months are over and {p} refund the last payment",
        ),
        PEOPLE,
        ("do", "do not"),
        (1, 24),
    ),
    Intent(
        (
            "export the {name} sales report for the last {n} weeks {p} returns",
            "download the sales report of the {name} team for the past {n} weeks {p} returns",
            "pull {n} weeks of sales data for {name} into a report {p} returns",
        ),
        TEAMS,
        ("including", "excluding"),
        (2, 52),
    ),
]


def _variant(text: str, rng: random.Random) -> str:
    """The same request typed differently: case, spacing and punctuation only."""
    words = text.split(" ")
    words = [word.upper() if rng.random() < 0.15 else word for word in words]
    spaced = "".join(word + (" " * rng.choice([1, 1, 2])) for word in words).strip()
    spaced = spaced[0].upper() + spaced[1:]
    return spaced + rng.choice(["?", "!", ".", " ..."])


def pairs() -> list[tuple[str, str, str]]:
    """Every labelled pair, as (kind, first, second), in a fixed order."""
    rng = random.Random(SEED)
    found: list[tuple[str, str, str]] = []
    for intent in INTENTS:
        low, high = intent.numbers
        for _ in range(FILLS):
            n, other_n = rng.sample(range(low, high + 1), 2)
            name, other_name = rng.sample(intent.names, 2)
            pos, neg = intent.polarity if rng.random() < 0.5 else intent.polarity[::-1]
            a, b = rng.sample(range(3), 2)

            def fill(
                wording: int, n: int = n, name: str = name, p: str = pos, it: Intent = intent
            ) -> str:
                return it.wordings[wording].format(n=n, name=name, p=p)

            first = fill(a)
            found.append(("paraphrase", first, fill(b)))
            found.append(("variant", first, _variant(first, rng)))
            found.append(("number", first, fill(a, n=other_n)))
            found.append(("name", first, fill(a, name=other_name)))
            found.append(("negation", first, fill(a, p=neg)))
    return found


def render() -> str:
    """The file's text: a header, then one tab-separated pair per line."""
    lines = [
        "# kind\tfirst\tsecond",
        "# Written by tests/cache/make_labelled_pairs.py; do not edit by hand.",
        "# paraphrase, variant: the same request. number, name, negation: a near miss.",
    ]
    lines += ["\t".join(pair) for pair in pairs()]
    return "\n".join(lines) + "\n"


def main() -> None:
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {len(pairs())} pairs to {PATH}")


if __name__ == "__main__":
    main()
