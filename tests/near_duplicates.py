"""About 200 labelled request pairs, and a router that really understands them.

Each pair is (stored request, new request, same meaning?). Paraphrases differ in case,
punctuation, filler words or a synonym; near misses differ by a negation, a number or an
entity, so the right answer differs although the words barely do. `understand` is the
"real router": deterministic rules standing in for a model that reads the request.
"""

from __future__ import annotations

import itertools
import re

ACTIONS = {"enable": "enable", "turn on": "enable", "activate": "enable",
           "disable": "disable", "turn off": "disable", "deactivate": "disable"}  # fmt: skip
SETTINGS = ["dark mode", "two factor login", "email alerts", "auto merge", "spell check",
            "light mode", "push alerts", "auto save"]  # fmt: skip
TRACKERS = ["github", "gitlab", "jira"]
COUNTS = ["3", "5", "10", "20"]
FILLERS = ["please ", "can you ", "kindly "]


def understand(request: str) -> str:
    """The route a careful reader gives `request`: the intent with its exact arguments."""
    text = re.sub(r"[^a-z0-9 ]", " ", request.lower())
    fillers = {"please", "can", "you", "kindly"}
    text = " ".join(word for word in text.split() if word not in fillers)
    for phrase, action in sorted(ACTIONS.items(), key=lambda item: -len(item[0])):
        if text.startswith(phrase + " "):
            return f"{action}:{text[len(phrase) + 1 :]}"
    match = re.fullmatch(
        r"(?:list|show) (?:the )?top (\d+) (open|closed) issues (?:on|in) (\w+)", text
    )
    if match:
        return f"top:{match[1]}:{match[2]}:{match[3]}"
    return "generate"


def pairs() -> list[tuple[str, str, bool]]:
    """The labelled pairs, in a fixed order."""
    found: list[tuple[str, str, bool]] = []
    for setting, (word, opposite) in itertools.product(
        SETTINGS, [("enable", "disable"), ("turn on", "turn off"), ("activate", "deactivate")]
    ):
        stored = f"{word} {setting}"
        found.append((stored, f"{stored.capitalize()}!", True))  # case and punctuation
        found.append((stored, f"{FILLERS[len(found) % 3]}{stored}", True))  # a filler word
        found.append((stored, f"{opposite} {setting}", False))  # the negation
    for setting, (first, second) in itertools.product(SETTINGS, [("enable", "turn on")]):
        found.append((f"{first} {setting}", f"{second} {setting}", True))  # a synonym
    for count, state, tracker in itertools.product(COUNTS, ["open", "closed"], TRACKERS):
        stored = f"show top {count} {state} issues on {tracker}"
        found.append((stored, f"list the top {count} {state} issues in {tracker}", True))
        other_count = COUNTS[(COUNTS.index(count) + 1) % len(COUNTS)]
        found.append((stored, stored.replace(f"top {count}", f"top {other_count}"), False))
        other_tracker = TRACKERS[(TRACKERS.index(tracker) + 1) % len(TRACKERS)]
        found.append((stored, stored.replace(tracker, other_tracker), False))
        flipped = stored.replace(state, "closed" if state == "open" else "open")
        found.append((stored, flipped, False))
    for a, b in itertools.pairwise(SETTINGS):
        found.append((f"enable {a}", f"enable {b}", False))  # another entity
    return found
