"""SECRET recall on outside labelled examples: our recognizer vs detect-secrets alone.

The examples are TruffleHog's detector pattern tests, written by TruffleHog's authors: under
`pkg/detectors/` of a checkout of trufflesecurity/trufflehog (GitHub), each detector's
`*_test.go` holds a table of inputs (a vendor key after its keyword, a connection string, a
private key block, a config line) with the secrets each must yield (`want: []string{...}`,
a non-empty `want: []detectors.Result{...}`, `shouldMatch: true`) or must not (`want: []string{}`,
`want: nil`, `shouldMatch: false`); a case without a `want` is not used. This
script reads them from the folder given on the command line; nothing of them is copied into the
project.

    git clone --depth 1 <trufflesecurity/trufflehog> /tmp/trufflehog
    .venv/bin/python benchmarks/secrets_external.py /tmp/trufflehog/pkg/detectors [--misses]

Only what can be read without running Go is used: string and raw-string literals, the test
file's own string variables, `+`, `[]byte(...)` and `fmt.Sprintf` with `%s`/`%v`/`%q`. Inputs
built from secrets fetched at test time (the `*_integration_test.go` files, GCP test secrets)
are skipped and counted.

Scoring: a positive input is found when findings cover every part of every wanted secret (a
wanted `id:secret` pair that is not written as one string in the input counts both parts, and
so does a key TruffleHog joined to its id or endpoint; a connection string counts its
password); "any part" counts an input whose findings cover at least one part (the key of a
key and id pair, most often). Negatives report how many inputs get any finding: some
of TruffleHog's negatives are real secrets that its detector refuses for lack of a nearby
keyword ("key out of prefix range"), which a scrubber should still take; they are listed by
test name with `--misses`.

- ours: `SecretRecognizer` (detect-secrets' regex plugins plus ours), findings at or above the
  pipeline's score threshold;
- detect-secrets alone: `detect-secrets scan` as a user runs it (every default plugin and
  filter, `SecretsCollection.scan_file`) on the input written to a temporary `.txt` file.

Passwords told in words (tickets, mail, incident reports) are read from labelled PII sets given
with `--labelled FILE` (repeatable; the TruffleHog folder is then optional): a JSON array of
`{"text", "NER": [{"entity", "label"}]}` (as Nannigalaxy/PII-synthetic_dataset ships it) or
ai4privacy's `{"source_text", "privacy_mask": [{"value", "label"}]}` records (JSON array or
JSON lines). A `PASSWORD` label is found when a finding overlaps its value in the text (quotes
and asterisks around a label are left out; a label not in the text is counted apart); records
without a password label that get a finding are listed with `--misses` (a set may leave some
passwords unlabelled).

    .venv/bin/python benchmarks/secrets_external.py \
        --labelled <checkout>/dataset/pii_syn_nano_en.json
"""

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.steps.offline import enforce_offline  # noqa: E402

_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|`([^`]*)`')
_ASSIGN = re.compile(r"^\s*(\w+)\s*:?=\s*", re.MULTILINE)
_FIELD = re.compile(r"\b(input|data)\s*:\s*")
_WANT = re.compile(r"\bwant\s*:\s*(nil|\[\]string\s*\{|\[\]detectors\.Result\s*\{\s*\}?)")
_SHOULD = re.compile(r"\bshouldMatch\s*:\s*(true|false)")
_SKIP = re.compile(r"\bskip\s*:\s*true")
_NAME = re.compile(r'\bname\s*:\s*"([^"]*)"')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
_CONNECTION = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


class NotLiteral(ValueError):
    """The expression needs Go to evaluate (a secret fetched at test time, a function call)."""


@dataclass
class Case:
    source: str
    name: str
    text: str
    secrets: list[str]  # empty: a negative

    @property
    def positive(self) -> bool:
        return bool(self.secrets)


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _expression(src: str, pos: int, env: dict[str, str]) -> tuple[str, int]:
    """Evaluate the Go string expression at `src[pos:]`; return its value and end."""
    value, pos = _term(src, pos, env)
    while True:
        match = re.compile(r"\s*\+\s*").match(src, pos)
        if not match:
            return value, pos
        more, pos = _term(src, match.end(), env)
        value += more


def _term(src: str, pos: int, env: dict[str, str]) -> tuple[str, int]:
    match = _STRING.match(src, pos)
    if match:
        raw = match.group(2)
        return (raw if raw is not None else _unquote(match.group(1))), match.end()
    for wrapper in ("[]byte(", "string("):
        if src.startswith(wrapper, pos):
            value, end = _expression(src, pos + len(wrapper), env)
            return value, _close(src, end)
    if src.startswith("fmt.Sprintf(", pos):
        return _sprintf(src, pos + len("fmt.Sprintf("), env)
    match = re.compile(r"[A-Za-z_]\w*").match(src, pos)
    if match and match.group(0) in env and not src.startswith("(", match.end()):
        return env[match.group(0)], match.end()
    raise NotLiteral(src[pos : pos + 40])


def _close(src: str, pos: int) -> int:
    match = re.compile(r"\s*\)").match(src, pos)
    if not match:
        raise NotLiteral(src[pos : pos + 40])
    return match.end()


def _sprintf(src: str, pos: int, env: dict[str, str]) -> tuple[str, int]:
    template, pos = _expression(src, pos, env)
    args = []
    while True:
        match = re.compile(r"\s*,\s*").match(src, pos)
        if not match:
            break
        value, pos = _expression(src, match.end(), env)
        args.append(value)
    pos = _close(src, pos)
    values = iter(args)

    def verb(match: re.Match[str]) -> str:
        if match.group(1) == "%":
            return "%"
        value = next(values)
        return '"' + value + '"' if match.group(1) == "q" else value

    try:
        return re.sub(r"%([svq%])", verb, template), pos
    except StopIteration:
        raise NotLiteral(template[:40]) from None


def _string_list(src: str, pos: int, env: dict[str, str]) -> list[str]:
    """The elements of a `[]string{...}` literal whose `{` ends at `pos`."""
    values = []
    while True:
        pos = re.compile(r"\s*").match(src, pos).end()
        if src.startswith("}", pos):
            return values
        value, pos = _expression(src, pos, env)
        values.append(value)
        pos = re.compile(r"\s*,?").match(src, pos).end()


def read_cases(folder: Path) -> tuple[list[Case], int]:
    """Labelled inputs of every pattern test under `folder`, and how many were not literal."""
    cases, skipped = [], 0
    for path in sorted(folder.rglob("*_test.go")):
        if path.name.endswith("_integration_test.go"):
            continue
        src = path.read_text(encoding="utf-8", errors="replace")
        env = _variables(src)
        fields = list(_FIELD.finditer(src))
        for index, field in enumerate(fields):
            stop = fields[index + 1].start() if index + 1 < len(fields) else len(src)
            names = _NAME.findall(src, max(0, field.start() - 300), field.start())
            name = names[-1] if names else "?"
            try:
                text, end = _expression(src, field.end(), env)
                case = _label(src, end, stop, text, env)
            except NotLiteral:
                skipped += 1
                continue
            if case is not None:
                cases.append(Case(str(path.relative_to(folder)), name, text, case))
    return cases, skipped


def _variables(src: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for match in _ASSIGN.finditer(src):
        try:
            env[match.group(1)], _ = _expression(src, match.end(), env)
        except NotLiteral:
            continue
    return env


def _label(src: str, start: int, stop: int, text: str, env: dict[str, str]) -> list[str] | None:
    """The wanted secrets of one case ([] for a negative), None for a skipped or unlabelled one."""
    if _SKIP.search(src, start, stop):
        return None
    want = _WANT.search(src, start, stop)
    if want:
        if want.group(1) == "nil" or want.group(1).endswith("}"):
            return []
        if want.group(1).startswith("[]string"):
            return _string_list(src, want.end(), env)
        return _whole_secret(text)  # a non-empty []detectors.Result
    should = _SHOULD.search(src, start, stop)
    if should:
        return _whole_secret(text) if should.group(1) == "true" else []
    return None


def _whole_secret(text: str) -> list[str]:
    """What a detector that reports the whole input protects: a connection string's password."""
    password = _CONNECTION.search(text)
    return [password.group(1)] if password else [text]


def secret_parts(case: Case) -> list[str]:
    """The substrings of the input that must be covered: each wanted secret, or its parts.

    A wanted secret not written as one string in the input is a pair TruffleHog joined (an id
    and a key, a key and its endpoint): it is cut at `:`, `;`, `,` or spaces, or else into the
    longest pieces of 4+ characters the input holds, left to right (`key` + `id` ->
    "smcud4y6…" + "cxu9w2g6"); a secret that cannot be cut so has no parts (not scorable)."""
    parts = []
    for secret in case.secrets:
        if secret in case.text:
            parts.append(secret)
            continue
        pieces = [p for p in re.split(r"[:;,\s]+", secret) if p]
        if pieces and all(p in case.text for p in pieces):
            parts.extend(pieces)
            continue
        parts.extend(_joined_pieces(secret, case.text))
    return parts


def _joined_pieces(secret: str, text: str) -> list[str]:
    pieces, at = [], 0
    while at < len(secret):
        end = len(secret)
        while end - at >= 4 and secret[at:end] not in text:
            end -= 1
        if end - at < 4:
            return []
        pieces.append(secret[at:end])
        at = end
    return pieces


def covered(text: str, parts: list[str], spans: list[tuple[int, int]]) -> bool:
    """Whether every part (each occurrence's first place in `text`) overlaps a finding."""
    for part in parts:
        start = text.find(part)
        if not any(s < start + len(part) and start < e for s, e in spans):
            return False
    return bool(parts)


def ours(text: str, threshold: float) -> list[tuple[int, int]]:
    from pipelines.steps.privacy.recognizers.secrets import SecretRecognizer

    recognizer = _OURS.setdefault("r", SecretRecognizer(language="en"))
    return [(r.start, r.end) for r in recognizer.analyze(text, ["SECRET"]) if r.score >= threshold]


_OURS: dict = {}


def detect_secrets_alone(text: str) -> list[tuple[int, int]]:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.txt"
        path.write_text(text, encoding="utf-8")
        collection = SecretsCollection()
        with default_settings():
            collection.scan_file(str(path))
        lines = text.split("\n")
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line) + 1)
        spans = []
        for _, secret in collection:
            line = lines[secret.line_number - 1]
            at = line.find(secret.secret_value or "")
            if secret.secret_value and at >= 0:
                start = offsets[secret.line_number - 1] + at
                spans.append((start, start + len(secret.secret_value)))
            else:
                spans.append((offsets[secret.line_number - 1], offsets[secret.line_number]))
        return spans


_PASSWORD_LABELS = frozenset({"PASSWORD"})


def read_labelled(path: Path) -> list[tuple[str, list[str]]]:
    """(text, password values) of each record of a labelled PII set (formats: module docstring)."""
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in raw.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = [data]
    records = []
    for item in data:
        if "source_text" in item:
            text, spans = item["source_text"], item.get("privacy_mask") or []
            values = [s.get("value", "") for s in spans if s.get("label") in _PASSWORD_LABELS]
        elif "text" in item:
            text, spans = item["text"], item.get("NER") or []
            values = [s.get("entity", "") for s in spans if s.get("label") in _PASSWORD_LABELS]
        else:
            raise SystemExit(f"{path}: a record has neither 'text' nor 'source_text'")
        records.append((text, [v.strip("'\"*") for v in values if v and v.strip("'\"*")]))
    return records


def labelled_report(paths: list[Path], detectors: dict, misses: bool) -> None:
    records = [record for path in paths for record in read_labelled(path)]
    labels = [(text, value) for text, values in records for value in values if value in text]
    absent = sum(1 for text, values in records for value in values if value not in text)
    plain = [text for text, values in records if not values]
    print(
        f"\n{len(records)} labelled records from {len(paths)} file(s): {len(labels)} password "
        f"labels in their text ({absent} not found as written), {len(plain)} records without one"
    )
    print("\n| detector | password recall | found / labels | unlabelled records with a finding |")
    print("|---|---|---|---|")
    for name, detect in detectors.items():
        found = [(t, v) for t, v in labels if covered(t, [v], detect(t))]
        flagged = [t for t in plain if detect(t)]
        print(
            f"| {name} | {len(found) / max(1, len(labels)):.2f} | {len(found)} / {len(labels)} "
            f"| {len(flagged)} / {len(plain)} |"
        )
        if misses:
            for text, value in labels:
                if (text, value) not in found:
                    print(f"  {name} MISS {value!r} in {text[:100]!r}")
            for text in flagged:
                spans = detect(text)
                print(f"  {name} FLAGGED {[text[a:b] for a, b in spans]} in {text[:100]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "detectors", type=Path, nargs="?", help="pkg/detectors of a TruffleHog checkout"
    )
    parser.add_argument(
        "--labelled", type=Path, action="append", default=[], help="a labelled PII set (repeat)"
    )
    parser.add_argument("--misses", action="store_true", help="list missed and flagged cases")
    args = parser.parse_args()
    if args.detectors is None and not args.labelled:
        parser.error("give a TruffleHog pkg/detectors folder, --labelled FILE, or both")
    if args.detectors is not None and not args.detectors.is_dir():
        parser.error(f"{args.detectors} is not a folder")
    for path in args.labelled:
        if not path.is_file():
            parser.error(f"--labelled {path}: no such file")
    enforce_offline()
    from pipelines.steps.config import PIIConfig

    threshold = PIIConfig().score_threshold
    detectors = {"ours": lambda t: ours(t, threshold), "detect-secrets": detect_secrets_alone}
    if args.labelled:
        labelled_report(args.labelled, detectors, args.misses)
    if args.detectors is None:
        return 0
    cases, skipped = read_cases(args.detectors)
    positives = [c for c in cases if c.positive]
    negatives = [c for c in cases if not c.positive]
    print(
        f"{len(cases)} labelled inputs from {len({c.source for c in cases})} test files "
        f"({len(positives)} with secrets, {len(negatives)} without); {skipped} not literal"
    )
    scorable = [c for c in positives if secret_parts(c)]
    print(
        f"{len(positives) - len(scorable)} positives not scorable (a wanted secret the input "
        "does not hold, even in pieces)"
    )
    print(
        "\n| detector | recall: every part | found / positives | recall: any part "
        "| negatives with a finding |"
    )
    print("|---|---|---|---|---|")
    for name, detect in detectors.items():
        spans = {id(c): detect(c.text) for c in scorable}
        found = [c for c in scorable if covered(c.text, secret_parts(c), spans[id(c)])]
        partly = [
            c for c in scorable if any(covered(c.text, [p], spans[id(c)]) for p in secret_parts(c))
        ]
        flagged = [c for c in negatives if detect(c.text)]
        recall = len(found) / max(1, len(scorable))
        print(
            f"| {name} | {recall:.2f} | {len(found)} / {len(scorable)} | "
            f"{len(partly) / max(1, len(scorable)):.2f} | {len(flagged)} / {len(negatives)} |"
        )
        if args.misses:
            for case in scorable:
                if case not in found:
                    print(f"  {name} MISS {case.source}: {case.name}")
            for case in flagged:
                print(f"  {name} FLAGGED {case.source}: {case.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
