"""Injection screen: instructions hidden or planted in training data.

Three scores per record:

- `ignore_policy`: instructions to ignore earlier instructions, rules or policies, or to act
  without restrictions (English and Chinese phrasings), in any turn;
- `hidden_text`: invisible characters (`pipelines.steps.privacy.invisible`), and long base64
  runs that decode to readable text (an instruction smuggled past a reviewer);
- `unrequested_payload`: a response that carries a URL, a shell command or code that executes
  something (`eval(`, `os.system(`, a `<script>`) while the prompt neither contains one nor asks
  for a link, a command or code. A plain code block is no payload.

Each score counts what was found (0 when nothing); `integrity` decides with thresholds.
"""

import base64
import binascii
import re

from pipelines.steps.integrity.screens import prompt_text, response_text
from pipelines.steps.privacy.invisible import INVISIBLE_REGEX
from pipelines.steps.records import Record

IGNORE_POLICY = "ignore_policy"
HIDDEN_TEXT = "hidden_text"
UNREQUESTED_PAYLOAD = "unrequested_payload"

_IGNORE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[\w\s,'-]{0,40}?\b(?:previous|prior|above|"
    r"earlier|all|any|your|the|system|safety|content)\b[\w\s,'-]{0,30}?\b(?:instructions?|rules?|"
    r"polic(?:y|ies)|guidelines?|prompts?|filters?|restrictions?|guardrails?)\b"
    r"|\b(?:you are now|act as|pretend to be)\b[\w\s,'-]{0,30}?\b(?:unrestricted|unfiltered|"
    r"jailbroken|dan|developer mode|no (?:rules|restrictions|limits))\b"
    # "without any restrictions" alone is ordinary (a probability "without any restrictions"):
    # only as how to answer or act is it an attempt to lift the rules.
    r"|\b(?:answer|respond|reply|act|operate|speak|talk|behave)\w*\s+(?:\w+\s+){0,3}?"
    r"without (?:any )?(?:restrictions|filters|safety guidelines|censorship)\b"
    r"|忽略(?:之前|以上|前面|所有)?的?(?:指令|指示|规则|提示)|无视(?:所有)?(?:规则|限制|指令)",
    re.IGNORECASE,
)
# Cheap keyword scans decide whether the costlier patterns run at all.
_IGNORE_HINTS = (
    "ignore",
    "disregard",
    "forget",
    "override",
    "bypass",
    "you are now",
    "act as",
    "pretend",
    "without",
    "忽略",
    "无视",
)
_SHELL_HINTS = (
    "curl",
    "wget",
    "sudo",
    "rm -",
    "chmod",
    "powershell",
    "nc -",
    "bash",
    "invoke-webrequest",
    "/bin/",
)
_URL_HINTS = ("://", "www.")
_CODE_HINTS = ("<script", "eval(", "exec(", "import ", "os.system(", "subprocess.")
_HIDDEN_CHARS = re.compile(INVISIBLE_REGEX)  # the curated suite's no_hidden_characters too
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=])")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"']+|\bwww\.[^\s<>\"']+", re.IGNORECASE)
_SHELL = re.compile(
    r"\b(?:curl|wget)\b[^\n]{0,200}?\|\s*(?:sudo\s+)?(?:ba|z|)sh\b"
    r"|\bsudo\s+\S+|\brm\s+-[rf]{1,2}\b|\bchmod\s+[+0-7]|\bpowershell(?:\.exe)?\s+-(?:e|enc|"
    r"encodedcommand)\b|\bnc\s+-[el]\b|\bbash\s+-c\b|\bInvoke-WebRequest\b|/bin/(?:ba)?sh\b"
    r"|\b(?:curl|wget)\s+(?:-\S+\s+)*https?://",
    re.IGNORECASE,
)
# Code that runs something on the reader's machine or fetches from elsewhere; a plain code block
# is an ordinary answer (a formula, a table, a snippet the user asked for in other words).
_CODE = re.compile(
    r"<script\b|\beval\(|\bexec\(|\bimport\s+(?:os|subprocess|socket)\b|\bos\.system\("
    r"|\bsubprocess\.\w+\(",
    re.IGNORECASE,
)
_ASKS_FOR_LINK = re.compile(
    r"\b(?:link|url|website|web ?page|download|article|source|reference|cite|citation)s?\b"
    r"|链接|网址|网站|文章|来源",
    re.IGNORECASE,
)
_ASKS_FOR_COMMAND = re.compile(
    r"\b(?:command|terminal|shell|script|bash|powershell|cli|code|snippet|function|program"
    r"|programming|algorithm|html|css|javascript|python|java|sql|web ?page|website|api)\b"
    r"|命令|脚本|代码|程序|编程|函数|网页|网站",
    re.IGNORECASE,
)


def ignore_policy_score(record: Record) -> float:
    """Number of ignore-the-rules instructions anywhere in the record."""
    text = record.text
    lowered = text.lower()
    if not any(hint in lowered for hint in _IGNORE_HINTS):
        return 0.0
    return float(len(_IGNORE.findall(text)))


def hidden_text_score(record: Record) -> float:
    """Invisible control characters plus base64 runs that decode to printable text."""
    text = record.text
    found = len(_HIDDEN_CHARS.findall(text))
    for run in _BASE64_RUN.findall(text):
        try:
            decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        printable = sum(1 for byte in decoded if 32 <= byte < 127 or byte in (9, 10, 13))
        if decoded and printable / len(decoded) > 0.9:
            found += 1
    return float(found)


def unrequested_payload_score(record: Record) -> float:
    """URLs, shell commands and code in the response that the prompt did not ask for."""
    response = response_text(record)
    lowered = response.lower()
    url = any(h in lowered for h in _URL_HINTS) and _URL.search(response) is not None
    shell = any(h in lowered for h in _SHELL_HINTS) and _SHELL.search(response) is not None
    code = any(h in lowered for h in _CODE_HINTS) and _CODE.search(response) is not None
    if not (url or shell or code):
        return 0.0
    prompt = prompt_text(record)
    asked_for_command = _ASKS_FOR_COMMAND.search(prompt) is not None
    score = 0
    if url and not (_URL.search(prompt) or _ASKS_FOR_LINK.search(prompt)):
        score += 1
    if shell and not (asked_for_command or _SHELL.search(prompt)):
        score += 1
    if code and not (asked_for_command or _CODE.search(prompt)):
        score += 1
    return float(score)


def score_injection(records: list[Record]) -> dict[str, dict[str, float]]:
    """Score every record; returns reason code -> record id -> score (the records are read
    once: a packed record is built again on each read)."""
    scorers = {
        IGNORE_POLICY: ignore_policy_score,
        HIDDEN_TEXT: hidden_text_score,
        UNREQUESTED_PAYLOAD: unrequested_payload_score,
    }
    scores: dict[str, dict[str, float]] = {code: {} for code in scorers}
    for record in records:
        for code, scorer in scorers.items():
            scores[code][record.id] = scorer(record)
    return scores
