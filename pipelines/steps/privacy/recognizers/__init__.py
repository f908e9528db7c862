"""Our Presidio recognizers, one family per module, loaded from a reviewed YAML file.

`pipelines/config/recognizers.yaml` names which families run for which language. Unlike
Presidio's own loader, `load_recognizers` fails closed: a file that does not parse, an unknown
key, an unknown family or an unsupported language is a `RecognizerConfigError` naming the file
and the key, never a silent fallback to defaults.

Families reused from Presidio (they carry their own validators: Luhn for CREDIT_CARD, the IBAN
mod-97 check, SSN invalid-range rules) are listed in `PRESIDIO_FAMILIES`; our own are in
`OWN_FAMILIES`, each in its module here. `spacy_ner`, `aba_routing`, `us_passport`, `url`
and `ip_address` keep their Presidio family names but are ours: Presidio's let spaCy's PERSON
outrank validated identifiers (`en_ner`), scored every checksum-valid 9-digit number as a
routing number at 1.0, passports included (`en_bank_ids`), cut URLs short of their path
(`en_url`), and spent 7 ms per thousand characters of `1.1.1.…` (`en_ip`). `email` is
Presidio's, not run on texts without an at sign (`email`).
"""

from collections.abc import Callable
from pathlib import Path

import regex
import yaml
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    MacAddressRecognizer,
    PhoneRecognizer,
    UsBankRecognizer,
    UsLicenseRecognizer,
    UsSsnRecognizer,
)

from pipelines.steps.privacy.recognizers.cn_address import CnLocationRecognizer
from pipelines.steps.privacy.recognizers.cn_bank_card import CnBankCardRecognizer
from pipelines.steps.privacy.recognizers.cn_id_card import CnIdCardRecognizer
from pipelines.steps.privacy.recognizers.cn_license_plate import CnLicensePlateRecognizer
from pipelines.steps.privacy.recognizers.cn_names import CnPersonRecognizer
from pipelines.steps.privacy.recognizers.cn_phone import CnPhoneRecognizer
from pipelines.steps.privacy.recognizers.cn_social_ids import QqNumberRecognizer, WechatIdRecognizer
from pipelines.steps.privacy.recognizers.cn_travel_documents import (
    CnPassportRecognizer,
    CnTravelPermitRecognizer,
)
from pipelines.steps.privacy.recognizers.cn_uscc import CnUsccRecognizer
from pipelines.steps.privacy.recognizers.email import AtSignEmailRecognizer
from pipelines.steps.privacy.recognizers.en_address import (
    PostalCodeRecognizer,
    UsAddressRecognizer,
)
from pipelines.steps.privacy.recognizers.en_bank_ids import (
    AnyCaseIbanRecognizer,
    PassportNumberRecognizer,
    RoutingNumberRecognizer,
)
from pipelines.steps.privacy.recognizers.en_card import LuhnCardRecognizer
from pipelines.steps.privacy.recognizers.en_dates import AgeRecognizer, DateOfBirthRecognizer
from pipelines.steps.privacy.recognizers.en_ip import IpAddressRecognizer
from pipelines.steps.privacy.recognizers.en_keyed_ids import (
    CnKeyedIdRecognizer,
    KeyedIdRecognizer,
)
from pipelines.steps.privacy.recognizers.en_ner import NerRecognizer
from pipelines.steps.privacy.recognizers.en_other_script import OtherScriptRecognizer
from pipelines.steps.privacy.recognizers.en_person import EnPersonRecognizer
from pipelines.steps.privacy.recognizers.en_phone import (
    GreaterChinaPhoneRecognizer,
    IntlPhoneRecognizer,
)
from pipelines.steps.privacy.recognizers.en_spelled import SpelledNumberRecognizer
from pipelines.steps.privacy.recognizers.en_street import IntlAddressRecognizer
from pipelines.steps.privacy.recognizers.en_url import FullUrlRecognizer
from pipelines.steps.privacy.recognizers.handles import UserHandleRecognizer
from pipelines.steps.privacy.recognizers.secrets import SecretRecognizer
from pipelines.steps.privacy.recognizers.slashed_names import (
    PinyinNameRecognizer,
    SlashedNameRecognizer,
)
from pipelines.steps.privacy.recognizers.tables import NameColumnRecognizer

RECOGNIZERS_FILE = Path(__file__).resolve().parents[3] / "config" / "recognizers.yaml"
LANGUAGES = ("en", "zh")
TOP_KEYS = frozenset({"recognizers"})
ENTRY_KEYS = frozenset({"family", "languages", "context"})


class RecognizerConfigError(ValueError):
    """The recognizer configuration must be fixed before any text can be scanned."""


def _presidio(cls, **kwargs) -> Callable[[str, list[str] | None], EntityRecognizer]:
    def build(language: str, context: list[str] | None) -> EntityRecognizer:
        extra = {"context": context} if context is not None else {}
        return cls(supported_language=language, **kwargs, **extra)

    return build


def _ascii_edges(build):
    """A Presidio family whose patterns find their word edges in ASCII (`\b`, `\\w`): a MAC
    address glued to Chinese (MAC地址00:1A:2B:3C:4D:5E) is one; Unicode reads Han as a word."""

    def ascii_build(language: str, context: list[str] | None) -> EntityRecognizer:
        recognizer = build(language, context)
        recognizer.global_regex_flags = (recognizer.global_regex_flags or 0) | regex.ASCII
        return recognizer

    return ascii_build


def _own(cls) -> Callable[[str, list[str] | None], EntityRecognizer]:
    return lambda language, context: cls(language=language, context=context)


PRESIDIO_FAMILIES = {
    "credit_card": _presidio(CreditCardRecognizer),
    "email": _presidio(AtSignEmailRecognizer),
    "us_ssn": _presidio(UsSsnRecognizer),
    "iban": _presidio(AnyCaseIbanRecognizer),
    "mac_address": _ascii_edges(_presidio(MacAddressRecognizer)),
    "us_bank_number": _presidio(UsBankRecognizer),
    "us_driver_license": _presidio(UsLicenseRecognizer),
    "phone_presidio": _presidio(PhoneRecognizer),
}
OWN_FAMILIES = {
    "spacy_ner": _own(NerRecognizer),
    "aba_routing": _own(RoutingNumberRecognizer),
    "us_passport": _own(PassportNumberRecognizer),
    "url": _own(FullUrlRecognizer),
    "ip_address": _own(IpAddressRecognizer),
    "en_person": _own(EnPersonRecognizer),
    "name_column": _own(NameColumnRecognizer),
    "slashed_name": _own(SlashedNameRecognizer),
    "pinyin_name": _own(PinyinNameRecognizer),
    "luhn_card": _own(LuhnCardRecognizer),
    "keyed_id": _own(KeyedIdRecognizer),
    "cn_keyed_id": _own(CnKeyedIdRecognizer),
    "user_handle": _own(UserHandleRecognizer),
    "us_address": _own(UsAddressRecognizer),
    "postal_code": _own(PostalCodeRecognizer),
    "intl_address": _own(IntlAddressRecognizer),
    "other_script": _own(OtherScriptRecognizer),
    "intl_phone": _own(IntlPhoneRecognizer),
    "spelled_number": _own(SpelledNumberRecognizer),
    "date_of_birth": _own(DateOfBirthRecognizer),
    "age": _own(AgeRecognizer),
    "secret": _own(SecretRecognizer),
    "cn_id_card": _own(CnIdCardRecognizer),
    "cn_phone": _own(CnPhoneRecognizer),
    "hk_tw_phone": _own(GreaterChinaPhoneRecognizer),
    "cn_bank_card": _own(CnBankCardRecognizer),
    "cn_uscc": _own(CnUsccRecognizer),
    "cn_passport": _own(CnPassportRecognizer),
    "cn_travel_permit": _own(CnTravelPermitRecognizer),
    "cn_license_plate": _own(CnLicensePlateRecognizer),
    "cn_person": _own(CnPersonRecognizer),
    "cn_location": _own(CnLocationRecognizer),
    "qq_number": _own(QqNumberRecognizer),
    "wechat_id": _own(WechatIdRecognizer),
}
FAMILIES = {**PRESIDIO_FAMILIES, **OWN_FAMILIES}


def load_recognizers(path: Path = RECOGNIZERS_FILE) -> dict[str, list[EntityRecognizer]]:
    """Build the recognizers that `path` configures, per language.

    Args:
        path: The reviewed recognizer YAML.

    Returns:
        Language code -> recognizers for it; every language in `LANGUAGES` that the file uses.

    Raises:
        RecognizerConfigError: The file is missing or does not parse, or names an unknown key,
            family or language (the message names the file and the key).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecognizerConfigError(f"{path}: cannot read the recognizer config ({exc})") from None
    except yaml.YAMLError as exc:
        raise RecognizerConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("recognizers"), list):
        raise RecognizerConfigError(f"{path}: expected a mapping with a `recognizers` list")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise RecognizerConfigError(f"{path}: unknown key {unknown[0]!r} (known: recognizers)")
    packs: dict[str, list[EntityRecognizer]] = {}
    for index, entry in enumerate(data["recognizers"]):
        where = f"{path}: recognizers[{index}]"
        if not isinstance(entry, dict):
            raise RecognizerConfigError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise RecognizerConfigError(
                f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(ENTRY_KEYS))})"
            )
        family = entry.get("family")
        if family not in FAMILIES:
            raise RecognizerConfigError(f"{where}.family: unknown recognizer family {family!r}")
        languages = entry.get("languages")
        if not isinstance(languages, list) or not languages:
            raise RecognizerConfigError(f"{where}.languages: expected a non-empty list")
        context = entry.get("context")
        if context is not None and not (
            isinstance(context, list) and all(isinstance(w, str) for w in context)
        ):
            raise RecognizerConfigError(f"{where}.context: expected a list of words")
        for language in languages:
            if language not in LANGUAGES:
                raise RecognizerConfigError(
                    f"{where}.languages: unsupported language {language!r} "
                    f"(supported: {', '.join(LANGUAGES)})"
                )
            packs.setdefault(language, []).append(FAMILIES[family](language, context))
    return packs
