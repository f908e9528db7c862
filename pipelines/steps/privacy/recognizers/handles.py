"""USER_HANDLE: a social-media handle written with its at sign (@碧落食人来, @sarcastic_tweets).

A handle names one account and so one person (or one organisation) as surely as a nickname
does; in forwarded posts (`//@大象院长:`), replies, support tickets and chat exports it is
often the only name a record carries, and no NER model reads it (LAC tags 大象院长 as a
title, spaCy reads most handles as nothing). The form is the same on every network: an at
sign that does not continue a Latin word (an e-mail address, `icon@2x.png` are not
handles), then a run of letters, digits, Han characters, `_` or `-` (up to 30, as Weibo
and Twitter allow), holding a letter or a Han character.

What is left out is code, where the at sign has meanings of its own: a decorator or an
annotation (an ASCII identifier) alone at the start of its line (`@property`,
`@app.route(...)`), an npm scope (`@types/node`), a variable after an operator or `DECLARE`
or before `=` (`WHERE id = @id`, `SET @n = 1`), a domain after the sign (`@gmail.com`), a
time (`@3pm`) and the at-keywords of CSS, JSON-LD, Javadoc / JSDoc and Objective-C
(`@media`, `"@id"`, `@param`, `@interface`): the grammar of those languages, not anyone's
account.
"""

import re

from pipelines.steps.privacy.recognizers.base import RegexRecognizer
from pipelines.steps.privacy.recognizers.en_names import english_words, is_english
from pipelines.steps.privacy.recognizers.en_url import top_level_domains

MAX_HANDLE = 30
_HANDLE = re.compile(
    rf"(?<![A-Za-z0-9_@.+\-&#=%~])@(?P<body>\w(?:[\w\-]{{0,{MAX_HANDLE - 2}}}\w)?)(?![\w\-])"
)
_LETTER = re.compile(r"[^\W\d_]")
_TIME = re.compile(r"\d+(?:[ap]\.?m|h|hrs?|mins?|s|x|k|m|g|gb|mb)?", re.IGNORECASE)
_DOMAIN_AFTER = re.compile(r"\.[A-Za-z]{2,}\b")
_OPERATOR_BEFORE = re.compile(r"(?:[=(<>+*|&!]\s*|\b(?:declare|exec|execute)\s+)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNED = re.compile(r"\s*:?=(?!=)")
_CODE_KEYWORDS = frozenset(
    # CSS at-rules and Sass / Tailwind directives
    "media import font-face keyframes charset supports page namespace layer container property "
    "counter-style font-feature-values viewport document apply tailwind include mixin extend use "
    "forward each if else for while function return "
    # JSON-LD keywords
    "id type context value graph list set language vocab base reverse index nest version json "
    "none "
    # Javadoc / JSDoc / docstring tags
    "param params returns throws exception see since author deprecated link inheritdoc todo "
    "example override private public protected static typedef callback template description "
    "module class constructor memberof interface enum const async yields license file summary "
    "brief note "
    # Objective-C, Swift, Kotlin, Java, Python annotations and decorators written inline
    "end implementation synthesize dynamic protocol selector optional required autoreleasepool "
    "try catch finally objc available escaping discardableresult main state binding published "
    "test before after suppresswarnings functionalinterface nullable nonnull jvmstatic "
    "composable inject component bean autowired service entity table column getter setter data "
    "staticmethod classmethod abstractmethod dataclass pytest app "
    # SQL Server system variables and Razor / Blade directives
    "rowcount error identity trancount model section foreach endif endforeach yield csrf "
    "extends using code".split()
)
"""At-keywords of programming and markup languages (lower case): the grammar, not an account."""


_KEYED_HANDLE = re.compile(
    r"(?i:(?<![A-Za-z0-9_])(?:user(?:[ _-]?name)?|login|screen[ _-]?name|nick(?:name)?"
    r"|line[ _]?id|skype(?:[ _-]?id)?|telegram|discord|instagram|snap(?:chat)?|github)"
    r"|用户名|用戶名|账号|帳號|昵称|暱稱)"
    r"[\"']?[ \t]*(?:(?i:is)|[=:：是为為])?[ \t]*[\"'“]?"
    r"(?P<value>[A-Za-z][A-Za-z0-9._\-]{1,30}[A-Za-z0-9])(?![A-Za-z0-9_@\-]|\.[A-Za-z0-9])"
)
"""An account's name after its key, in prose, a form, a log or a JSON line (`Your username is
pnair03`, `username=zhangxiaofan88`, `user 'kasia.nowak'`, `Line ID是green_0823`)."""
_SSH_LOGIN = re.compile(
    r"\b(?:Accepted|Failed) (?:password|publickey|keyboard-interactive(?:/pam)?) for "
    r"(?:invalid user )?(?P<value>[A-Za-z_][A-Za-z0-9._\-]{0,31}) from "
)
"""The account of an SSH login in sshd's log line (`Accepted publickey for rkapoor from ...`)."""
_FILE_NAME = re.compile(
    r".*\.(?:json|ya?ml|txt|html?|py|js|ts|csv|log|xml|md|cfg|ini|conf|sh|exe|com|org|net|io)$",
    re.IGNORECASE,
)
_NOT_AN_ACCOUNT = frozenset({"root", "admin", "administrator", "guest", "anonymous", "nobody"})
"""Shared accounts of a system, no person's."""


_ACCOUNT_KEY = re.compile(r"(?i)user[ _-]?name|login")
MIN_ACCOUNT_WORD = 5


def _an_account_word(match: re.Match[str]) -> bool:
    """A value of letters alone after `username` or `login`: an account's name when it is in
    lower case, five letters or more, no English word and no system's shared account
    (`username agallagher`; not `username field`, `login screen`, `username: admin`)."""
    value = match.group("value")
    key = match.string[match.start() : match.start("value")]
    return (
        _ACCOUNT_KEY.match(key.lstrip("\"' ")) is not None
        and value.isalpha()
        and value.islower()
        and len(value) >= MIN_ACCOUNT_WORD
        and value not in _NOT_AN_ACCOUNT
        and not is_english(value, english_words(None))
    )


def _keyed_accounts(text: str) -> list[tuple[int, int]]:
    """Accounts named by their key (`_KEYED_HANDLE`: a value holding a digit, `_` or `.`, as
    accounts' names do and words do not, and no file's name; after `username` or `login`
    also a word in lower case that is no English word, `username agallagher`) and SSH
    logins' accounts."""
    spans = []
    for match in _KEYED_HANDLE.finditer(text):
        value = match.group("value")
        if _FILE_NAME.match(value):
            continue
        if not any(c.isdigit() or c in "._" for c in value) and not _an_account_word(match):
            continue
        spans.append(match.span("value"))
    for match in _SSH_LOGIN.finditer(text):
        if match.group("value").lower() not in _NOT_AN_ACCOUNT:
            spans.append(match.span("value"))
    return spans


class UserHandleRecognizer(RegexRecognizer):
    """Social-media handles: an at sign that starts a word, then an account's name; an
    account's name after its key (`username=`, `Line ID`) and in an SSH login's log line."""

    ENTITY = "USER_HANDLE"
    FLAGS = 0
    BASE_SCORE = 0.8
    """Above a name read inside the handle (LAC's 0.75: @何辛ESPN卫视主持人 is one account),
    so that the whole handle is replaced, not the name within it."""

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        results = [
            self._result(start, end, self.BASE_SCORE, "an account's key")
            for start, end in _keyed_accounts(text)
        ]
        if "@" not in text:
            return results
        for match in _HANDLE.finditer(text):
            start, end = match.span()
            body = match.group("body")
            if not _LETTER.search(body) or _TIME.fullmatch(body):
                continue
            if body.lower() in _CODE_KEYWORDS or _code(text, start, end):
                continue
            end = _dotted_end(text, end)
            results.append(self._result(start, end, self.BASE_SCORE, "at sign and account"))
        return results


_DOTTED_NAME = re.compile(r"(?:\.[A-Za-z_]\w*)*")
_DOTTED = re.compile(r"\.(?P<part>[A-Za-z0-9_]{1,20})(?![\w@\-]|\.[A-Za-z0-9])")


def _dotted_end(text: str, end: int) -> int:
    """The end of a handle that goes on after a dot, as Slack's and Teams' names do
    (`@olivia.b`, `@tom.nguyen`); a top-level domain after the dot is a domain's
    (`@gmail.com`, left to `_code`)."""
    dotted = _DOTTED.match(text, end)
    if dotted is None or dotted.group("part").lower() in top_level_domains()[0]:
        return end
    return dotted.end()


def _opens_its_line(text: str, start: int) -> bool:
    """Whether only spaces or tabs stand between the line's start and `start` (read back over
    them alone: each handle reads only the blanks right before it, so the test is linear)."""
    at = start
    while at and text[at - 1] in " \t":
        at -= 1
    return at == 0 or text[at - 1] == "\n"


def _code(text: str, start: int, end: int) -> bool:
    """Whether the at sign at `start` belongs to code: a decorator or annotation opening its
    line with nothing but a call or a dotted name after it, an npm scope, a variable after
    an operator or a SQL keyword or before an assignment, or a domain right after the name."""
    if _IDENTIFIER.fullmatch(text, start + 1, end) and _opens_its_line(text, start):
        # A decorator: its dotted name, then its call or nothing else on its line (no
        # decorator holds Han or "-"; `@olivia.b can you…` is a chat's handle).
        after = _DOTTED_NAME.match(text, end).end()
        if text[after : after + 1] == "(":
            return True
        while after < len(text) and text[after] in " \t":
            after += 1
        if after == len(text) or text[after] == "\n":
            return True
    if text.startswith("/", end) or _ASSIGNED.match(text, end):
        return True
    if _DOMAIN_AFTER.match(text, end) and _dotted_end(text, end) == end:
        return True  # a domain (@gmail.com), not a dotted handle (@tom.nguyen)
    return bool(_OPERATOR_BEFORE.search(text[max(0, start - 12) : start]))
