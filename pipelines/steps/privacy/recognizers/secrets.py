"""SECRET: credentials found by detect-secrets' plugins, plus the few they do not cover.

Every finding has the one entity type `SECRET`; the detector that found it (the detect-secrets
plugin class, or one of ours: `GcpApiKey`, `AlibabaAccessKey`, `ConnectionString`,
`ConnectionStringParameter`, `VendorToken`, `ConfigPassword`, `HighEntropyNearKeyword`,
`ProsePassword`) is the subtype, recorded in the result's
recognition metadata under `secret_type`. Private key blocks are matched from their BEGIN line
to their END line so that the whole key body is replaced.

detect-secrets' regex plugins are used through their own `denylist` patterns (the same regexes
`detect-secrets scan` runs); `IPPublicDetector` is left out (IP_ADDRESS covers addresses).
A value that only stands for a secret (`<password>`, `${DB_PASS}`, `xxxxx`) is not one.

A password told in words, as people write them in tickets, mail and chats ("my password is
Tr0ub4dor&3", "the PIN for the card is 4821", "login: ana@example.com / W!nter2024"), has no
separator a config line has: `prose_passwords` reads the few words after a credential word (or
after an e-mail address and a slash) for one that is in a value's place — right after the
word, or after a linking word (is, was, to, :, =) — and looks like a credential rather than a
word of the sentence: quoted, or holding a digit, a symbol or a capital inside a word, and not
an ordinary English word ("the password is incorrect", "case-sensitive", "expires on
2024-01-02" are sentences, not values). A PIN is four to twelve digits.
"""

import re
from functools import lru_cache

from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from presidio_analyzer import RecognizerResult

from pipelines.steps.privacy.recognizers.base import RegexRecognizer
from pipelines.steps.privacy.recognizers.en_names import english_words, is_english

PLUGINS = (
    "artifactory.ArtifactoryDetector",
    "aws.AWSKeyDetector",
    "azure_storage_key.AzureStorageKeyDetector",
    "basic_auth.BasicAuthDetector",
    "cloudant.CloudantDetector",
    "discord.DiscordBotTokenDetector",
    "github_token.GitHubTokenDetector",
    "gitlab_token.GitLabTokenDetector",
    "ibm_cloud_iam.IbmCloudIamDetector",
    "ibm_cos_hmac.IbmCosHmacDetector",
    "jwt.JwtTokenDetector",
    "mailchimp.MailchimpDetector",
    "npm.NpmDetector",
    "openai.OpenAIDetector",
    "pypi_token.PypiTokenDetector",
    "sendgrid.SendGridDetector",
    "slack.SlackDetector",
    "softlayer.SoftlayerDetector",
    "square_oauth.SquareOAuthDetector",
    "stripe.StripeDetector",
    "telegram_token.TelegramBotTokenDetector",
    "twilio.TwilioKeyDetector",
)
VENDOR_PREFIXES = (
    r"sk_live_", r"sk_test_", r"pk_live_", r"rk_live_", r"rk_test_", r"whsec_",  # Stripe, Paystack
    r"ghp_", r"gho_", r"ghu_", r"ghs_", r"ghr_", r"github_pat_",  # GitHub
    r"glpat-", r"gldt-", r"glptt-", r"glrt-",  # GitLab
    r"xox[abposr]-", r"xapp-",  # Slack
    r"sk-ant-", r"sk-proj-", r"sk-svcacct-", r"sk-admin-",  # Anthropic, OpenAI
    r"hf_", r"npm_", r"pypi-", r"dop_v1_", r"doo_v1_", r"dor_v1_",  # Hugging Face, npm, PyPI, DO
    r"shpat_", r"shpss_", r"shpca_", r"shppa_",  # Shopify
    r"SG\.", r"key-(?=[0-9a-z]{32})", r"sq0atp-", r"sq0csp-", r"EAAA",  # SendGrid, Mailgun, ...
    r"dapi(?=[0-9a-f]{32})", r"lin_api_", r"pscale_tkn_", r"pscale_pw_", r"glc_", r"glsa_",
    r"ATATT", r"dp\.st\.", r"dp\.pt\.", r"ya29\.", r"AKID", r"hvs\.", r"hvb\.",  # ..., Vault
)  # fmt: skip
"""Prefixes that vendors put on their keys and tokens; with 16+ key characters after one, the
string is a credential wherever it stands (no keyword needed)."""
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%s|(.)\1*)$")
"""A value that only stands for a secret: <password>, ${DB_PASS}, {{token}}, %s, xxxxx, *****."""

_KEYWORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|auth|credential"
    r"|密码|口令|密钥)"
)
_KEY_REST = r"(?:(?:[_.-]|(?-i:(?=[A-Z])))[\w.-]*)?"
_VALUE = r"(?P<value>[^\s'\",;\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]{6,})"
EXTRA = (
    ("GcpApiKey", r"AIza[0-9A-Za-z_\-]{35}"),
    ("AlibabaAccessKey", r"(?<![A-Za-z0-9])LTAI[0-9A-Za-z]{12,20}(?![A-Za-z0-9])"),
    (
        "AzureConnectionString",
        r"DefaultEndpointsProtocol=https?;AccountName=[^;\s]+;AccountKey=[^;\s]+",
    ),
    (
        "PrivateKey",
        r"-----BEGIN[A-Z ]*PRIVATE KEY( BLOCK)?-----[\s\S]*?"
        r"-----END[A-Z ]*PRIVATE KEY( BLOCK)?-----",
    ),
    ("PrivateKey", r"-----BEGIN[A-Z ]*PRIVATE KEY( BLOCK)?-----[A-Za-z0-9+/=\s]*"),
    ("ConnectionString", r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:@/]+:(?P<value>[^\s@/]+)@[^\s]+"),
    # A password or secret as a parameter of a connection string (JDBC, ODBC, ADO.NET).
    (
        "ConnectionStringParameter",
        r"(?i)[;?&](?:password|pwd|secret|accountkey|sharedaccesskey)=(?P<value>[^;&\s\"'<>]{4,})",
    ),
    ("VendorToken", rf"(?<![A-Za-z0-9_-])(?:{'|'.join(VENDOR_PREFIXES)})[A-Za-z0-9_\-.]{{16,}}"),
    (
        "ConfigPassword",
        # After the keyword, a separator or a camelCase part (password_hash, secretKey), not
        # more of a word (tokenizer); the value stops at Chinese text and punctuation:
        # "设置强密码，并定期更换" is prose.
        rf"(?i)(?<![A-Za-z]){_KEYWORDS}{_KEY_REST}\s*(?:[:=]|=>|:=|是|为|：)\s*['\"]?{_VALUE}",
    ),
    (
        # An identifier that ends in the keyword: PGPASSWORD, dbpassword, clientsecret.
        "ConfigPassword",
        rf"(?i)(?<![A-Za-z0-9])[A-Za-z0-9]+[_.-]?(?:password|passwd|passphrase|secret|token"
        rf"|apikey){_KEY_REST}\s*(?:[:=]|=>|:=)\s*['\"]?{_VALUE}",
    ),
    # Passwords on command lines (shell history, logs): mysql -pSECRET, curl -u user:SECRET.
    (
        "CommandLinePassword",
        r"\b(?:mysql|mysqldump|mysqladmin|sshpass)\b[^\n]*?\s-p\s?(?P<value>[^\s'\"-][^\s'\"]{3,})",
    ),
    (
        "CommandLinePassword",
        r"\bcurl\b[^\n]*?\s(?:-u|--user)\s+['\"]?[^\s:'\"]+:(?P<value>[^\s'\"]{4,})",
    ),
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{20,}(?![A-Za-z0-9+/=_-])")
_ENTROPY = Base64HighEntropyString()
MIN_ENTROPY = 3.5
CONTEXT = (
    "key", "token", "secret", "pass", "pwd", "credential", "auth", "bearer", "private", "dsn",
    "密钥", "令牌", "密码", "口令", "凭证",
)  # fmt: skip


_RUN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}=+(?=[A-Za-z0-9+/_-])")
"""A name and `=` run together with the value (`Key=O3BV...`, `?key=AemQ...`)."""
_ASSIGNED = re.compile(
    r"[A-Za-z_][\w.-]*[\"']?\s*(?::=|=>|[:=])\s*[\"'`]?\Z|[A-Za-z_][\w.-]*\s+[\"'`]\Z"
)
"""A name the value is given to, right before it: `name: "…"`, `name = '…'`, `name '…'`."""


def high_entropy_tokens(text: str, words: tuple[str, ...]) -> list[tuple[int, int]]:
    """Runs of 20+ key characters with Shannon entropy >= `MIN_ENTROPY` that a context word
    precedes (within 40 characters), or that are given to a name (`cloudimage: "d__9rv…"`,
    `scraping_bee = '…'`, `Key=O3BV…`) and mix letters and digits, as generated keys do: a
    vendor's own name is the key's name more often than any context word."""
    spans = []
    for match in _TOKEN.finditer(text):
        start, token = match.start(), match.group(0)
        run_name = _RUN_NAME.match(token)
        if run_name:
            start, token = start + run_name.end(), token[run_name.end() :]
        if len(token) < 20:
            continue
        before = text[max(0, start - 40) : start]
        if not any(w in before.lower() for w in words):
            named = run_name is not None or _ASSIGNED.search(before) is not None
            mixed = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
            if not (named and mixed):
                continue
        if _ENTROPY.calculate_shannon_entropy(token) >= MIN_ENTROPY:
            spans.append((start, match.end()))
    return spans


_PROSE_KEYWORD = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(?:(?P<pin>pin(?:[ -]?(?:code|number))?|otp|(?:verification|one[ -]time"
    r"|alarm|door|gate|entry|lock|lockbox|key[ -]?safe|safe)[ -]code)|pass(?:word|wd|phrase|code)s?"
    r"|pwd|pw|(?:access|security|login) code|(?P<bare>pass))(?=[\s:=\"'“‘`]|$)"
)
"""Words that announce a credential in prose (a PIN's value, and an alarm's, a door's or a
one-time code's, must be digits; not a keypad's or a vault's code: the audit's canaries are
written so, `audit.planting.CANARY_PREFIXES`, and must reach the model unscrubbed; after a bare
"pass" the value needs a linking word: "the pass is 'letmein42'", not "pass the salt"); one
inside a longer token (`<password>@host`, `password_hash`) is not read as one."""
_LOGIN_WORD = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(?:log[io]ns?|logon|creds|credentials?|user(?:name)?s?|accounts?)"
    r"(?![A-Za-z0-9_])"
)
"""Words before a login and its password written as a pair: `creds: admin:Passw0rd!`,
`the default login is admin / admin123`."""
_JOINED_PAIR = re.compile(r"[\w.@+-]{1,64}[:/](?P<value>[^\s/:]{4,})")
_ZH_KEYWORD = re.compile(
    r"(?:密码|口令|密钥|PIN码|验证码|校验码|动态码|取件码|取货码|提货码|开门码|門禁碼|驗證碼"
    r"|取药码|授权码|授權碼|兑换码|核销码|券码|提取码)"
    r"(?:是|为|為|：|:|=)?\s*[\"'“‘]?(?P<value>(?:(?![,;])[!-~]){4,256})"
)
"""A Chinese credential word — a password, a one-time code (验证码), a parcel locker's or a door's
code — and the Latin-script value written right after it, with or without 是 / 为 / a colon
("密码Abc@2024", "WiFi密码：guest8888", "验证码是583920"): Chinese prose leaves no space, and
its comma, read as "," once the text is normalized, ends the value (验证码是583920，5分钟内)."""
_PAIR = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\s*(?:/|\|)\s*(?=\S)")
"""An e-mail address and a slash, the way a login and its password are written as a pair."""
_LINKS = frozenset(
    {"is", "was", "are", "were", "be", "been", "now", "still", "remains", "to", "as", "of",
     ":", "=", "-", "—", "–", "reads", "says"}
)  # fmt: skip
"""Words after which a credential's value stands (a linking word, not part of the sentence)."""
_PROSE_WORDS = 8
"""Words after the credential word read for its value (a clause: "for the admin account is")."""
_PROSE_CHARS = 400
"""Characters after the credential word those words are looked for in."""
_WORD = re.compile(r"\S+")
_PHRASE_CHARS = 64
"""Characters a quoted passphrase runs to its closing quote at most."""
_PAIRED = {"“": "”", "‘": "’"}
_QUOTES = "\"'“‘`"
_OPENING = _QUOTES + "([=:"
_CLOSING = "\"'”’`)].,;:"
_DATE_OR_TIME = re.compile(r"^\d{1,4}(?:[-/.:]\d{1,4}){1,2}(?:[ap]m)?$", re.IGNORECASE)


def _credential_like(core: str, quoted: bool, pin: bool, english: frozenset[str]) -> bool:
    """Whether a word in a value's place is a credential rather than a word of the sentence."""
    if pin:
        return core.isdigit() and 4 <= len(core) <= 12
    if not 4 <= len(core) <= 256 or _PLACEHOLDER.match(core) or _DATE_OR_TIME.match(core):
        return False
    if "://" in core or re.fullmatch(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", core):
        return False  # an address, which its own recognizers take
    if quoted:
        return True
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", core) if p]
    if not parts:
        return False
    has_digit = any(c.isdigit() for c in core)
    has_symbol = any(not c.isalnum() for c in core.rstrip("!?"))
    camel = re.search(r"[a-z][A-Z]", core) is not None
    if not (has_digit or has_symbol or camel):
        return False
    # Words joined by hyphens or the like ("case-sensitive", "re-enter") are a sentence's.
    return has_digit or camel or not all(p.isalpha() and is_english(p, english) for p in parts)


_PASSWORD_KEY = re.compile(r"(?i)pass|pwd|secret|密码|口令|密钥")


def _a_status(text: str, match: re.Match, span: tuple[int, int], english) -> bool:
    """Whether a config line's value is a status word after a key that names no password nor
    secret: `auth: failed`, `token: expired`, `auth=pending` (a log's subsystem and its state),
    a lower-case ordinary English word or its -ed / -ing form. After a password's or a
    secret's key any value is one (`password: sunshine` is a weak password, still one)."""
    value = text[span[0] : span[1]]
    key = text[match.start() : span[0]]
    stems = (value, value[:-1], value[:-2], value[:-3])  # failed, expired, pending
    return (
        not _PASSWORD_KEY.search(key)
        and value.isalpha()
        and value.islower()
        and any(len(stem) >= 3 and is_english(stem, english) for stem in stems)
    )


def prose_passwords(text: str, english: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of credentials told in words (see the module's docstring). After each credential
    word (or e-mail address and slash) at most `_PROSE_WORDS` words of the same sentence are
    read, so the cost is linear in the text."""
    spans = []
    starts = [(m.end(), m.group("pin") is not None, m.group("bare") is not None)
              for m in _PROSE_KEYWORD.finditer(text)]  # fmt: skip
    starts += [(m.end(), False, False) for m in _PAIR.finditer(text)]
    spans.extend(_login_pairs(text, english))
    for match in _ZH_KEYWORD.finditer(text):
        core = match.group("value").rstrip(_CLOSING)
        if _credential_like(core, False, False, english):
            spans.append((match.start("value"), match.start("value") + len(core)))
    for position, pin, bare in starts:
        in_place = not bare  # right after the credential word, its value may stand
        words = _WORD.finditer(text, position, position + _PROSE_CHARS)
        for _, word in zip(range(_PROSE_WORDS), words, strict=False):
            raw = word.group(0)
            if raw.lower() in _LINKS:
                in_place = True
                continue
            lead = len(raw) - len(raw.lstrip(_OPENING))
            core = raw[lead:].rstrip(_CLOSING)
            quoted = lead > 0 and raw[lead - 1] in _QUOTES
            start = word.start() + lead
            if quoted and in_place:
                # A quoted passphrase may hold spaces: "correct horse battery staple".
                close = _PAIRED.get(raw[lead - 1], raw[lead - 1])
                end = text.find(close, start, start + _PHRASE_CHARS)
                if end > start and "\n" not in text[start:end]:
                    core = text[start:end]
            if in_place and core and _credential_like(core, quoted, pin, english):
                spans.append((start, start + len(core)))
                break
            # "the password for root: X" (a colon ends the clause before the value)
            in_place = raw.endswith((":", "="))
            if raw[-1] in ".;!?":
                break
    return spans


def _login_pairs(text: str, english: frozenset[str]) -> list[tuple[int, int]]:
    """The password of a login written as a pair (`admin:Passw0rd!`, `admin / admin123`) within
    `_PROSE_WORDS` words of the same sentence after a login word."""
    spans = []
    for match in _LOGIN_WORD.finditer(text):
        after = _WORD.finditer(text, match.end(), match.end() + _PROSE_CHARS)
        words = [word for _, word in zip(range(_PROSE_WORDS), after, strict=False)]
        for index, word in enumerate(words):
            raw = word.group(0).rstrip(_CLOSING)
            joined = _JOINED_PAIR.fullmatch(raw)
            if joined and _credential_like(joined.group("value"), False, False, english):
                spans.append((word.start() + joined.start("value"), word.start() + joined.end()))
                break
            if raw in ("/", "|") and 0 < index < len(words) - 1:
                value = words[index + 1]
                core = value.group(0).rstrip(_CLOSING)
                if _credential_like(core, False, False, english):
                    spans.append((value.start(), value.start() + len(core)))
                    break
            if word.group(0)[-1] in ".;!?":
                break
    return spans


LINEAR_FORMS = {
    "NpmDetector": (re.compile(r"\/:_authToken=\s*((npm_.+)|([A-Fa-f0-9-]{36})).*"),),
}
"""Plugins whose patterns we read in a linear form of our own. detect-secrets' npm pattern,
`//.+/:_authToken=...`, backtracks over the rest of the line from every `//` it meets:
quadratic on `//@a://@a:...` (45 ms for 10 kB, 3.1 s for 100 kB). The key's own name,
`/:_authToken=`, is what the registry URL's `//` only announced; the groups are the same."""


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    import importlib

    patterns = []
    for dotted in PLUGINS:
        module, name = dotted.split(".")
        plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        patterns.extend((name, regex) for regex in LINEAR_FORMS.get(name, plugin.denylist))
    patterns.extend((name, re.compile(regex)) for name, regex in EXTRA)
    return tuple(patterns)


class SecretRecognizer(RegexRecognizer):
    """Cloud keys, tokens, JWTs, private keys, passwords in config text, high-entropy tokens."""

    ENTITY = "SECRET"
    CONTEXT = CONTEXT

    def analyze(self, text, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        if self.ENTITY not in entities:
            return []
        results = []
        english = english_words(nlp_artifacts)
        for name, pattern in _patterns():
            for match in pattern.finditer(text):
                if "value" in pattern.groupindex:
                    span = match.span("value")
                elif pattern.groups:
                    span = match.span(pattern.groups)
                else:
                    span = match.span()
                if span[0] >= 0 and _PLACEHOLDER.match(text[span[0] : span[1]]):
                    continue
                if name == "ConfigPassword" and _a_status(text, match, span, english):
                    continue
                if span[0] < 0 or span[1] - span[0] < 6:
                    span = match.span()
                results.append(self._secret(*span, 0.9, name))
        for start, end in high_entropy_tokens(text, self.words):
            results.append(self._secret(start, end, 0.7, "HighEntropyNearKeyword"))
        for span in prose_passwords(text, english):
            results.append(self._secret(*span, 0.85, "ProsePassword"))
        return results

    def _secret(self, start: int, end: int, score: float, secret_type: str) -> RecognizerResult:
        result = self._result(start, end, score, secret_type)
        result.recognition_metadata["secret_type"] = secret_type
        return result
