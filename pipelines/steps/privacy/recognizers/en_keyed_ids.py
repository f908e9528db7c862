"""ID_NUMBER: an identifier announced by its name, whatever its format.

Banks, hospitals and offices write their own identifiers into tickets and notes: "patient ID
AHC-0933289", "account number 76983425K", "medical record number MRN_987654321", "employee ID
number 56789-TRIBAL", "policy #88291-LK", "PAN 'ABCDEZ1234F'". Their formats differ per
organisation and country, so none is listed: the value is the token right after an
identifier's name — an ID word after a kind of record (account, patient, member, policy, tax,
voter, licence ... + ID / number / no. / #), or a name that is an identifier by itself (ID,
MRN, TIN, EIN, PAN, SSN, IBAN, VIN, a prescriber's NPI or DEA number, the national numbers
of other countries — NRIC, CPF, SIN, DNI, CURP, PESEL … —, a booking's PNR, Aadhaar, passport,
credit card, licence plate) — and a linking word or sign
(is, :, =, #, a quote). It must hold a digit and be 4–35 characters of letters, digits and
`- _ / . : *`, with groups in capitals and digits after single spaces; a date or a time is
none. A value under a validated type's name that fails its check (an SSN of the well-known
examples, an IBAN or a card number with a wrong check digit) is still taken: a typo'd
identifier is still the person's. A validated type on the same span (SSN, IBAN, passport, card,
routing number) wins it whatever the scores (`FALLBACK_ENTITIES`): this one fills the gaps.
"""

from pipelines.steps.privacy.recognizers.base import RegexRecognizer

_KIND = (
    r"(?:bank\s+)?account|acct|acc|a/c|member(?:ship)?|customer|client|patient|employee|staff|student"
    r"|user|policy(?:holder)?|insurance|claim|tax(?:payer)?|national|voter|citizen|personal"
    r"|identity|medical\s+record|health(?:\s+insurance)?|social\s+(?:security|insurance)"
    r"|national\s+insurance|nhs|pan(?:\s+card)?|aadhaa?r|passport|(?:driver'?s?|driving)\s+licen[cs]e"
    r"|licen[cs]e|id\s+card|vehicle(?:\s+identification)?|(?:licen[cs]e|number|registration)\s+plate"
    r"|plate|booking|reservation|emp|hospital|title|ticket|badge"
    r"|meter(?:\s+serial)?|library(?:\s+card)?|payroll|rx|order|invoice|tracking"
    r"|tenant|applicant|candidate|resident|guest|passenger|travell?er|subscriber|beneficiary"
    r"|borrower|loan|mortgage|lease|case|confirmation|loyalty|rma|return|refund|visa"
    r"|application"
)
_ID_WORD = (
    r"(?:id(?:entifier|entification)?(?:[\s_-]*(?:number|no\.?|#))?|number|no\.|no(?=\s*[:#=]|\s*[A-Za-z]{0,4}\d)"
    r"|num|nr\.?|#"
    r"|ref(?:erence)?(?:\s*(?:number|no\.|#))?\.?)"
)
_NAMED = (
    r"(?-i:ID|MRN|TIN|EIN|PAN|SSN|IBAN|VIN|NPI|DEA|NRIC|CPF|CNPJ|PNR|SIN|DNI|NIE|NIF|CURP|BSN"
    r"|PESEL|TFN|NINO|NIN|PPSN?|UPN|KTN|IMEI|PAC|NHI|HKID)(?:\s*(?:number|no\.|#))?"
    r"|(?-i:NI)\s+(?:number|no\.?)|medicare(?:\s+card)?(?:\s*(?:number|no\.|#))?"
    r"|(?<=[\"'])(?:ssn|sin|tin|ein|nino|tfn|nhs|mrn|vin)(?=[\"'])"
    r"|aadhaa?r|passport|(?:licen[cs]e|number)\s+plate|e-?ticket|frequent\s+flyer"
    r"|(?:credit|debit|bank)\s+card(?:\s*(?:number|no\.|#))?"
    r"|(?:driver'?s?|driving)\s+licen[cs]e|a/c"
)
_LINK = r"[\"']?\s*(?:(?:is|was)\s*)?(?:[:=#\-–]\s*)?[\"'(]?"
"""What may stand between the name and the value: a closing quote of a JSON key, is / was, one
sign (`:`, `=`, `#`, a dash) and an opening quote; no nested repetition, so no backtracking."""
_VALUE = (
    r"(?P<value>(?:[A-Za-z0-9][A-Za-z0-9_\-/.:*]{2,33}[A-Za-z0-9*]|\d{2,3}(?= \d)"
    r"|(?-i:[A-Z]{2,3})(?= \d))"
    r"(?: (?=[A-Z]*[0-9*])[A-Z0-9*\-]{2,34}){0,7}"
    r"(?: (?:\d|(?-i:[A-Z])(?=[,.;:)!?]|\s*$)))?(?:\((?-i:[0-9A])\))?)(?![A-Za-z0-9_\-/])"
)
"""The value, and groups written with single spaces that hold a digit (a card number or an IBAN
in fours: `4716 9876 2234 1561`, `IN60 SBK0000000000`; a number in threes: `046 454 286`);
it may open with two or three capitals standing apart and close with one character apart, as
British national insurance and hospital numbers are written (`QQ 12 34 56 C`, `RXH 449 201
7`, `MBR 6640-2291-07`: a closing letter only before a mark or the end, never `… 5678 I
think`); a check character in brackets closes it, as on a Hong Kong identity card
(`Y123456(7)`)."""
_NOT_A_DATE_OR_TIME = (
    r"(?!(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?)"
    r"(?![A-Za-z0-9_\-/.:*]))"
)
"""Not a value that is a date or a time (2024-01-05, 05/01/2024, 10:30; an SSN's 123-45-6789 is
neither): "date of birth ID: 05/01/2024" names no identifier."""
_BANK_CODE = (
    r"(?i:sort[\s_-]*code|bsb|ifsc|(?:transit|branch)[\s_-]*(?:number|no\.|#|code)?)"
    r"(?:\s*(?:number|no\.|#))?"
)
"""A bank's branch code, which with an account number names the account: a British sort code
(`20-45-77`, written like a date, which it is not), an Australian BSB (`062-000`), an Indian
IFSC (`SBIN0001234`), a Canadian transit and institution number (`12345`, `00012-003`)."""
_VEHICLE = (
    r"(?i:reg(?:istration)?(?:\s+(?:no\.?|number|mark|plate))?|vrn|vehicle|car|van|number\s+plate)"
)
_UK_PLATE = r"(?P<value>[A-Z]{2}\d{2}[ ]?[A-Z]{3})(?![A-Za-z0-9])"
"""A British registration (two letters, the age's two digits, three letters: `KD19 XRT`), which
`_VALUE` does not read whole (its second group holds no digit)."""
_PLATE_WORD = (
    r"(?i:(?:licen[cs]e|number|registration|reg\.?|vehicle|car|truck|van)\s+plate|plate|rego"
    r"|vrn|(?:(?:vehicle|car|van|truck)\s+)?reg(?:istration)?\.?(?:\s+(?:no\.?|number|mark))?"
    r"|vehicle|car|van|truck)"
)
"""A plate's own word: its value may be written in any country's format."""
_PLATE_REST = r"[A-Z0-9]*(?:[ -][A-Z0-9]{1,4})*(?![A-Za-z0-9])"
_PLATE = (
    rf"(?P<value>(?=(?:[A-Z0-9][ -]?){{4}}{_PLATE_REST})(?=[A-Z0-9 -]*?[A-Z]{_PLATE_REST})"
    r"[A-Z0-9]{1,10}(?:[ -][A-Z0-9]{1,4}){0,3})(?![A-Za-z0-9])"
)
"""A plate as countries write it, in capitals and digits, in up to four groups: `8KJD214` (a
Californian), `LND 482 KJ` (a Nigerian), `KA 05 MN 1234` (an Indian), `ABC-1234`; five
characters or more, a letter among them (each looked for up to the value's end: `Vehicle: 2019
Honda` has none), and a digit (`validate`): `plate 14` is a figure."""
_BANK_CODE_VALUE = (
    r"(?P<value>\d{2}[- ]\d{2}[- ]\d{2}|\d{3}[- ]\d{3}|\d{5}-\d{3}|\d{5,6}|[A-Z]{4}0[A-Z0-9]{6})"
    r"(?![A-Za-z0-9\-])"
)


_RECORD = (
    r"(?:bank\s+)?account|acct|policy|order|invoice|member(?:ship)?|customer|client|payroll"
    r"|patient|employee|tracking|parcel|shipment|consignment|claim|rx|prescription"
    r"|ticket|booking|reservation|complaint|incident|case|request|enquiry|inquiry|ref(?:erence)?\.?"
    r"|card|visa|mastercard|amex|maestro"
)
"""A kind of record whose number is written right after it, with no ID word: `account 1002 3344
5566`, `order 88213345`, `policy HOME-55120`, `Rx 6620419`, `ticket SR-77821`, `Ref: RF-55102`;
a card's number whose check digit is wrong (`her card 4716 0301 8852 2197`: a typo'd number is
still the card's, and a valid one is CREDIT_CARD's, which wins the span)."""
_LONG_NUMBER = (
    r"(?=[A-Za-z]{1,6}[\-/]?(?:\d[ \-/.]?){5}|(?:\d[ \-/.]?){6}"
    r"|\d[A-Za-z0-9]{1,7}(?:\d[ \-/.]?){6}|(?:[A-Za-z]{1,6}-){1,3}\d{4})"
)
"""Such a number holds six digits or more (`order 10000 units` is a quantity, `account 2023` a
year), or five after a prefix of letters (`HOME-55120`), or six after a carrier's prefix of
digits and letters (UPS: `tracking 1Z999AA10123456784`), or four after letters and a hyphen, a
code by its shape (`Incident IR-2291`, `policy AUTO-NG-2024-118734`)."""


class KeyedIdRecognizer(RegexRecognizer):
    """The value after an identifier's name ("patient ID AHC-0933289", "MRN 108965")."""

    ENTITY = "ID_NUMBER"
    PATTERNS = (
        (
            rf"(?i)(?<![A-Za-z0-9])(?:(?:{_KIND})[\s_-]*{_ID_WORD}|{_NAMED})(?:(?<=#)|(?![A-Za-z]))"
            rf"{_LINK}{_NOT_A_DATE_OR_TIME}{_VALUE}",
            0.5,
        ),
        (
            rf"(?i)(?<![A-Za-z0-9])(?:{_RECORD})(?![A-Za-z])[ \t]*(?:[:#][ \t]*)?"
            rf"{_LONG_NUMBER}{_NOT_A_DATE_OR_TIME}{_VALUE}",
            0.5,
        ),
        (rf"(?<![A-Za-z0-9]){_BANK_CODE}{_LINK}{_BANK_CODE_VALUE}", 0.5),
        (rf"(?<![A-Za-z0-9]){_VEHICLE}{_LINK}{_UK_PLATE}", 0.5),
        (rf"(?<![A-Za-z0-9]){_PLATE_WORD}(?![A-Za-z]){_LINK}{_PLATE}", 0.5),
    )
    FLAGS = 0

    def validate(self, value: str) -> bool:
        return any(c.isdigit() for c in value)


FALLBACK_ENTITIES = frozenset({KeyedIdRecognizer.ENTITY})
"""Types that only fill gaps: where another finding overlaps one, the other wins (`pii._resolve`):
a bank account number stays US_BANK_NUMBER with its own surrogate."""


_CN_KIND = (
    r"病历|病案|住院|门诊|就诊卡?|医保卡?|社保卡?|医疗保险|工|员工|职工|学|学籍|客户|会员卡?|用户"
    r"|银行账|银行帐|账|帐|账户|帐户|银行卡|卡|保单|保险单|驾驶证|驾照|档案|证件|护照|纳税人识别"
    r"|身分证|身份证|身分證|身份證|帳|帳戶|銀行帳|銀行卡|證件|護照|駕照|保單|病歷|會員卡?|員工|客戶"
    r"|病理|体检|體檢|检查|檢查|化验|化驗|医院|醫院|学生|學生|成员|成員|用电户|用水户|燃气户|户|戶"
    r"|电表|水表|燃气表|表|賬戶|账户|处方|處方|警|票|车架|車架|发动机|發動機"
    r"|订单|訂單|运单|運單|快递单|快遞單|物流单|物流單"
)
_CN_NAMED = (
    r"身分證(?:統一編號)?|身份證|身份证|身分证|护照|護照|警号|警號|票号|票號|病理号|病理號"
    r"|(?:电子)?处方|(?:電子)?處方|学号|學號|户号|戶號|表号|錶號"
    r"|编号|編號|单号|單號|证号|證號|流水号|流水號|合同号|合同號"
)
"""Names that are an identifier's by themselves, with no 号 after them (身分證F123456784,
电子处方RX2024…, 警号045123): a Taiwan ID, a prescription's, an officer's number; and the
identifier words that end a record's name, whatever the record (投诉编号, 退款单号, 转诊单号,
执业证号: a complaint's, a refund's, a referral's, a licence's number)."""
_CN_RECORD = (
    r"订单|訂單|运单|運單|快递|快遞|包裹|合同|保单|保單|银行卡|銀行卡|工资卡|工資卡|储蓄卡|儲蓄卡"
    r"|信用卡|借记卡|借記卡|社保卡|医保卡|醫保卡|账户|帳戶|账号|帳號"
    r"|银行|銀行|信托|信託|信用社|农商行|農會"
)
"""Records whose number is written right after their name with no ID word (订单 DD20240603771,
韵达快递 4312567890123, 包裹JDVA21734568812, 工资卡：6210 9857 …), six digits or more as in
English (`_LONG_NUMBER`: 订单 100 件 is a quantity); a bank's name before its account's number
(中国银行 6013 8200 0123 9874 561, 中國信託 822-5301-2846-9371), never before an amount
(`_NOT_AN_AMOUNT`: 招商银行 500000元)."""
_CN_ID_WORD = r"(?:号码|编号|号|字号|號碼|編號|號|字號|ID|id)"


_NOT_A_CN_DATE = r"(?![年月日号號時时点點分秒])"
"""Not a number that a date's or a time's unit follows (编号：2024年6月 names no identifier)."""
_NOT_AN_AMOUNT = r"(?!\s*[元万亿块圆圓股份人笔筆户戶家个個美港欧歐英日])"
"""Not a number that a unit of money or a count follows (银行 500000元, 信託 120000股)."""


class CnKeyedIdRecognizer(KeyedIdRecognizer):
    """The Latin-script value after a Chinese identifier's name ("病历号：MZ20240013", "工号A1023",
    "客户编号 C-88231", "会员卡号为 88012345"): the same reading as `KeyedIdRecognizer`, for the
    Chinese pack (its validated types — 身份证, 统一社会信用代码, bank cards — win their spans)."""

    ENTITY = "ID_NUMBER"
    PATTERNS = (
        (
            rf"(?:(?:{_CN_KIND}){_CN_ID_WORD}|{_CN_NAMED})\s*(?:是|为|係|為|：|:|=|#)?\s*"
            rf"[\"'“‘(（]?{_NOT_A_DATE_OR_TIME}{_VALUE}{_NOT_A_CN_DATE}",
            0.5,
        ),
        (
            rf"(?:{_CN_RECORD})\s*(?:是|为|係|為|：|:|#)?\s*{_LONG_NUMBER}{_NOT_A_DATE_OR_TIME}"
            rf"{_VALUE}{_NOT_A_CN_DATE}{_NOT_AN_AMOUNT}",
            0.5,
        ),
    )
