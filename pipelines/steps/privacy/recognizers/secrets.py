"""SECRET: credentials found by detect-secrets' plugins, plus the few they do not cover.

Every finding has the one entity type `SECRET`; the detector that found it (the detect-secrets
plugin class, or one of ours: `GcpApiKey`, `AlibabaAccessKey`, `ConnectionString`,
`ConnectionStringParameter`, `VendorToken`, `ConfigPassword`, `HighEntropyNearKeyword`) is the
subtype, recorded in the result's
recognition metadata under `secret_type`. Private key blocks are matched from their BEGIN line
to their END line so that the whole key body is replaced.

detect-secrets' regex plugins are used through their own `denylist` patterns (the same regexes
`detect-secrets scan` runs); `IPPublicDetector` is left out (IP_ADDRESS covers addresses).
A value that only stands for a secret (`<password>`, `${DB_PASS}`, `xxxxx`) is not one.
"""

import re
from functools import lru_cache

from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from presidio_analyzer import RecognizerResult

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

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


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    import importlib

    patterns = []
    for dotted in PLUGINS:
        module, name = dotted.split(".")
        plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        patterns.extend((name, regex) for regex in plugin.denylist)
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
                if span[0] < 0 or span[1] - span[0] < 6:
                    span = match.span()
                results.append(self._secret(*span, 0.9, name))
        for match in _TOKEN.finditer(text):
            token = match.group(0)
            near = any(
                w in text[max(0, match.start() - 40) : match.start()].lower() for w in self.words
            )
            if near and _ENTROPY.calculate_shannon_entropy(token) >= MIN_ENTROPY:
                results.append(self._secret(*match.span(), 0.7, "HighEntropyNearKeyword"))
        return results

    def _secret(self, start: int, end: int, score: float, secret_type: str) -> RecognizerResult:
        result = self._result(start, end, score, secret_type)
        result.recognition_metadata["secret_type"] = secret_type
        return result
