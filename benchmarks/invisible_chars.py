"""Identifiers split by invisible characters: how many the detector still finds (issue #16).

Each character the issue reported (and a sample of the rest of the definition in
`pipelines.steps.privacy.invisible`) is inserted at random inner positions of each identifier
type (SSN, card, Chinese id, IBAN, e-mail, phone), in a sentence that names it; an identifier
counts as found when a finding of its type covers its whole span in the original text.

    .venv/bin/python benchmarks/invisible_chars.py [--trials 3] [--seed 0] [--old-definition]

`--old-definition` measures the detector with the invisible set it had before issue #16 (11
characters), for comparison. Prints the found rate per identifier type and per character and
the overall rate (target: at least 0.97). Only synthetic identifiers are printed.
"""

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.steps.offline import enforce_offline  # noqa: E402

REPORTED = [
    "\u034f", "\ufe0f", "\U000e0020", "\U000e0041", "\U000e007f", "\u3164", "\u061c", "\u2800",
    "\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2062",
    "\u2063", "\u2064", "\u180e", "\x00", "\x07",
]  # fmt: skip
MORE = ["\u115f", "\u1160", "\uffa0", "\ufeff", "\u202e", "\u2066", "\U000e0100", "\x1b"]
OLD_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff")

# (entity type, language, sentence with {} where the identifier goes, identifier)
IDENTIFIERS = [
    ("US_SSN", "en", "My social security number is {} for the form.", "536-90-4399"),
    ("CREDIT_CARD", "en", "Charge my card number {} please.", "4111 1111 1111 1111"),
    ("CN_ID_CARD", "zh", "我的身份证号码是{}，请核对。", "11010519491231002X"),
    ("IBAN_CODE", "en", "Please wire it to IBAN {} by Friday.", "GB82 WEST 1234 5698 7654 32"),
    ("EMAIL_ADDRESS", "en", "Write to {} about the invoice.", "jane.doe@fastmail.com"),
    ("PHONE_NUMBER", "en", "Call me on my phone at {} tomorrow.", "(415) 882-2671"),
]


def split(identifier: str, char: str, rng: random.Random) -> str:
    """The identifier with `char` inserted at one or two random inner positions."""
    out = identifier
    for _ in range(rng.choice([1, 2])):
        at = rng.randrange(1, len(out))
        out = out[:at] + char + out[at:]
    return out


def found(findings, entity: str, start: int, end: int) -> bool:
    return any(f.entity_type == entity and f.start <= start and f.end >= end for f in findings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="random insertions per pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--old-definition", action="store_true")
    args = parser.parse_args()
    enforce_offline()
    from pipelines.steps.config import PIIConfig
    from pipelines.steps.privacy import normalize, pii

    if args.old_definition:
        normalize.INVISIBLE = OLD_INVISIBLE
        normalize.has_invisible = lambda text: False
    cfg = PIIConfig()
    analyzer = pii.build_analyzer(cfg)
    rng = random.Random(args.seed)
    by_type: Counter[str] = Counter()
    by_char: Counter[str] = Counter()
    hits_type: Counter[str] = Counter()
    hits_char: Counter[str] = Counter()
    baseline = 0
    for entity, language, sentence, identifier in IDENTIFIERS:
        plain = sentence.format(identifier)
        at = sentence.index("{}")
        baseline += found(
            pii.scan_text(analyzer, plain, cfg, language=language),
            entity,
            at,
            at + len(identifier),
        )
        for char in REPORTED + MORE:
            for _ in range(args.trials):
                hidden = split(identifier, char, rng)
                text = sentence.format(hidden)
                findings = pii.scan_text(analyzer, text, cfg, language=language)
                ok = found(findings, entity, at, at + len(hidden))
                by_type[entity] += 1
                by_char[f"U+{ord(char):04X}"] += 1
                hits_type[entity] += ok
                hits_char[f"U+{ord(char):04X}"] += ok
    label = "old definition (11 characters)" if args.old_definition else "invisible.py"
    print(f"detector with {label}; plain identifiers found: {baseline}/{len(IDENTIFIERS)}")
    for entity in by_type:
        print(f"  {entity:<14} {hits_type[entity]:>4}/{by_type[entity]:<4}"
              f" {hits_type[entity] / by_type[entity]:.3f}")  # fmt: skip
    misses = {c: f"{hits_char[c]}/{n}" for c, n in by_char.items() if hits_char[c] < n}
    print(f"  characters with misses: {misses or 'none'}")
    total, hits = sum(by_type.values()), sum(hits_type.values())
    print(f"found rate: {hits}/{total} = {hits / total:.3f} (target >= 0.97)")
    return 0 if hits / total >= 0.97 else 1


if __name__ == "__main__":
    raise SystemExit(main())
