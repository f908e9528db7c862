"""PII detection and pseudonymization (Presidio + en_core_web_sm, offline)."""

import logging
import multiprocessing
import os
import re
import signal
from dataclasses import replace

import pytest
from presidio_analyzer import AnalyzerEngine

from pipelines.steps.config import PIIConfig
from pipelines.steps.ingest.language import language_verdict
from pipelines.steps.privacy import pii
from pipelines.steps.privacy.pii import (
    Finding,
    PIIEngineError,
    build_analyzer,
    pseudonym,
    residual_pii,
    scan_records,
    scan_text,
    scrub_records,
)
from pipelines.steps.records import Message, Record
from tests.sockets import watch_sockets

CFG = PIIConfig()
KEY = b"test-key-0123456789abcdef"
OTHER_KEY = b"other-key-0123456789abcdef"


@pytest.fixture(scope="module")
def analyzer() -> AnalyzerEngine:
    return build_analyzer(CFG)


def _record(record_id: str, *contents: str) -> Record:
    return Record(
        id=record_id,
        source_file="test.jsonl",
        source_line=1,
        format="chat",
        messages=tuple(
            Message(role="user" if i % 2 == 0 else "assistant", content=c)
            for i, c in enumerate(contents)
        ),
        language="en",
    )


@pytest.mark.parametrize(
    ("text", "value", "entity_type"),
    [
        ("Contact john.smith@example.com for details.", "john.smith@example.com", "EMAIL_ADDRESS"),
        (
            "Write to mary_ann+news@mail.example.org today.",
            "mary_ann+news@mail.example.org",
            "EMAIL_ADDRESS",
        ),  # noqa: E501
        ("Call me at (212) 555-0123 tomorrow.", "(212) 555-0123", "PHONE_NUMBER"),
        ("My phone is 212-555-0123.", "212-555-0123", "PHONE_NUMBER"),
        ("Jane Doe met the auditors in the office.", "Jane Doe", "PERSON"),
        ("The ticket was assigned to Robert Johnson.", "Robert Johnson", "PERSON"),
        ("Card number 4111 1111 1111 1111 on file.", "4111 1111 1111 1111", "CREDIT_CARD"),
        ("Charge 5500000000000004 for the renewal.", "5500000000000004", "CREDIT_CARD"),
        ("My SSN is 536-90-4399.", "536-90-4399", "US_SSN"),
        ("Server at 192.168.1.20 is down.", "192.168.1.20", "IP_ADDRESS"),
        ("Visit https://www.example.com/page now.", "https://www.example.com/page", "URL"),
        # Offsets are code points: the non-ASCII prefix must not shift the span.
        ("Zoë – café: zoe@example.com", "zoe@example.com", "EMAIL_ADDRESS"),
        # en_core_web_sm reads "Giovanni Lombardi (" as one span before "Italy": the name ends
        # at its last letter and the country stays a place (CoNLL-2003's news)
        ("2. Giovanni Lombardi ( Italy ) Polti 5 seconds behind", "Giovanni Lombardi", "PERSON"),
        ("2. Giovanni Lombardi ( Italy ) Polti 5 seconds behind", "Italy", "LOCATION"),
        # it reads "Faroe Islands - Jan" as one place before "Allan Mueller": the place keeps
        # its own part instead of losing to the person
        ("Faroe Islands - Jan Allan Mueller ( 60th minute )", "Faroe Islands", "LOCATION"),
        # a greeting's name and NER's full name overlap: the finding covers the whole name,
        # the surname is not left behind ("Dear Mr. David" + "Lee")
        ("Dear Mr. David Lee, your card ending 4421 was charged.", "David Lee", "PERSON"),
        ("Dear MR. DAVID LEE, your card ending 4421 was charged.", "DAVID LEE", "PERSON"),
        # a form's next field after a gap of spaces is no part of the name before it
        ("PATIENT NAME: ROBERT O'BRIEN  DOB: 03/04/1961", "ROBERT O'BRIEN", "PERSON"),
        # a part of a found full name, again alone: the same person (NER read it as a place)
        ("Glenn Hoddle named him. Hoddle said he saw no reason.", "Hoddle", "PERSON"),
        ("Magnus spent a year as the assistant to Magnus Poulsen.", "Magnus", "PERSON"),
        # a country the name lexicons read as a name stays a place
        ("Sri Lanka beat Australia by four wickets in the third match.", "Sri Lanka", "LOCATION"),
        ("The United States beat El Salvador 3-1 in a friendly.", "El Salvador", "LOCATION"),
        # a surname alone that WordNet lists as a famous person is no ordinary word: spaCy's
        # lemma index holds "arafat", no general dictionary does (a customer may be named so)
        ("His aides said Arafat would hold the weekly meeting.", "Arafat", "PERSON"),
        ("Gaddafi has dismissed any unrest as the work of agents.", "Gaddafi", "PERSON"),
        # as does a place opened by a place's word ("St" + a given name, a compass word)
        ("In St Louis , Tom Pagnozzi had three hits and three RBIs.", "St Louis", "LOCATION"),
        ("flights between Europe and North America .", "North America", "LOCATION"),
        # one word that says something is its speaker, a person (NER read Tarango as ORG)
        ('" I support their enthusiasm , " Tarango said about the fans .', "Tarango", "PERSON"),
        ('" It is bad , " said Eyles .', "Eyles", "PERSON"),
        # a famous surname WordNet lists is no ordinary word for the speaker test either
        ("Orwell wrote the novel during a time of war.", "Orwell", "PERSON"),
        # as does one that opens a clause of "who"
        ("Lebed , who flew into Chechnya earlier in the day , said he hoped.", "Lebed", "PERSON"),
        # one word that opens a sentence spoken to someone is who it speaks to
        ("Loey , do you not have any more stories ?", "Loey", "PERSON"),
        ("Thanks. Priya, please send the signed form.", "Priya", "PERSON"),
        # "miss" in lower case is the verb before a place, a title before a name
        ("Jason Little will miss Australia 's end-of-tour fixture.", "Australia", "LOCATION"),
        ("I will miss Sarah so much.", "Sarah", "PERSON"),
        ("In St Louis , Tom Pagnozzi had three hits and three RBIs.", "Tom Pagnozzi", "PERSON"),
        # a relative's name: a person even where NER reads a place, in lower case too
        ("I would like to remove my kid Alina from the will.", "Alina", "PERSON"),
        ("Please add my wife Danielle Smith to the account.", "Danielle Smith", "PERSON"),
        ("my son jake broke his arm yesterday", "jake", "PERSON"),
        # a famous surname WordNet lists is no ordinary word after "last name?" either
        ("What's your last name? Boyle", "Boyle", "PERSON"),
        # a name introduced in lower case, then its family name in lower case
        ("my name is borna jerković but everyone calls me borna", "borna", "PERSON"),
        ("My name is krithika and I love you", "krithika", "PERSON"),
        # only a person has a kid or a daughter
        ("It was a done thing between him and Asya's kid.", "Asya", "PERSON"),
        # a title in lower case before a listed name is still one
        ("call dr smith tomorrow about the scan", "smith", "PERSON"),
        ("Hi, this is mark from support.", "mark", "PERSON"),
        ("Attn: Priya Raman\nEncl: signed contract", "Priya Raman", "PERSON"),
        ("Ticket opened by the desk on behalf of Ana.", "Ana", "PERSON"),
        # a rank's, an office's or an occupation's title before a name (NER left these out)
        ("Detective Ruiz called back.", "Ruiz", "PERSON"),
        ("Nurse Ratched administered 5mg.", "Ratched", "PERSON"),
        ("Lt. Brandt arrived at the scene.", "Brandt", "PERSON"),
        ("Trooper Vance stopped him on the highway.", "Vance", "PERSON"),
        # the value of a person's field in a form, in any case
        ("Account holder: jane doe\nSort code: 20-00-00", "jane doe", "PERSON"),
        ("Next of kin: Ruth Okafor (daughter)", "Ruth Okafor", "PERSON"),
        # a record's key and its quoted value (NER reads a quoted run as a work's title)
        ('{"customer_name": "jane doe", "city": "Campinas"}', "jane doe", "PERSON"),
        (
            '{"name": "Beatriz Nascimento", "phone": "+55 11 91234-5678"}',
            "Beatriz Nascimento",
            "PERSON",
        ),
        ("next_of_kin: ruth okafor", "ruth okafor", "PERSON"),
        # a field's name written surname first: the given name too, also one that is a word
        ("Patient: Gupta, Anil. DOB 12/03/1961.", "Gupta, Anil", "PERSON"),
        ("Rx: Amoxicillin. Patient: Declan Murphy.", "Declan Murphy", "PERSON"),  # no full stop
        ("Claimant: Nguyen, Thi Huong; policy 4471", "Nguyen, Thi Huong", "PERSON"),
        # a title before bare initials (British letters write no full stops)
        ("Please pay it to Mr T Ahmed at the branch.", "T Ahmed", "PERSON"),
        ("Letter to Dr J K Rowling about the appointment.", "J K Rowling", "PERSON"),
        # one word after a self-introduction that the model's vocabulary never saw
        ("Telepharmacy chat: hi this is rohit, can I take ibuprofen", "rohit", "PERSON"),
        ("Account name: Chukwuemeka Obi", "Chukwuemeka Obi", "PERSON"),
        # a mail's display name, also surname first; a lower-case listed name after "call"
        ('From: "Okafor, Chidi" <chidi.okafor@firm.ng>', "Okafor, Chidi", "PERSON"),
        ('Cc: "Lund, Henrik" <h@x.no>', "Lund, Henrik", "PERSON"),
        ("pls call dave on 0412 345 678 re the listing", "dave", "PERSON"),
        ("Please ask J.R. Tolkien about it.", "J.R. Tolkien", "PERSON"),
        # NER's person that only a place is named so: a place (a name ending in Hill stays)
        (
            "elected to bat against Sri Lanka in the third day-night limited",
            "Sri Lanka",
            "LOCATION",
        ),
        ("San Diego 3 NEW YORK 2", "San Diego", "LOCATION"),
        ("2. Michael Green ( Jamaica ) 10.09", "Michael Green", "PERSON"),
        # what only a person does or is
        ("Jacob lives on 90 Whitchurch Road.", "Jacob", "PERSON"),
        ("Scott is a very sympathetic person.", "Scott", "PERSON"),
        # one listed name NER reads as an organization is a name (nothing scrubs an ORG)
        (
            "yeah but conor makes more than anyone like a million . conor makes millions for a"
            " fight .",
            "conor",
            "PERSON",
        ),
    ],
)
def test_when_text_contains_entity_then_scan_finds_its_exact_span(
    analyzer: AnalyzerEngine, text: str, value: str, entity_type: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    spans = {(text[f.start : f.end], f.entity_type) for f in findings}
    assert (value, entity_type) in spans


@pytest.mark.parametrize(
    ("text", "absent_type"),
    [
        # Luhn check fails: a 16-digit number that is not a card number.
        ("Card number 4111 1111 1111 1112 on file.", "CREDIT_CARD"),
        ("Card 4111111111111112 is wrong.", "CREDIT_CARD"),
        ("The quarterly report was approved on Monday.", "PERSON"),
        ("Version 1.2.3 was released.", "IP_ADDRESS"),
    ],
)
def test_when_text_lacks_entity_then_scan_reports_none_of_that_type(
    analyzer: AnalyzerEngine, text: str, absent_type: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert absent_type not in {f.entity_type for f in findings}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Customer: Bell, Texas", "Texas"),  # a place after a surname
        ("Contact: Jane Lee, Sales Manager", "Manager"),  # a role
        ("Dear Sir I am writing about my bill.", "I am"),  # a pronoun, not an initial
    ],
)
def test_when_a_name_is_followed_by_a_place_a_role_or_a_pronoun_then_those_stay(
    analyzer: AnalyzerEngine, text: str, kept: str
) -> None:
    start = text.index(kept)
    findings = scan_text(analyzer, text, CFG)

    assert not [
        f
        for f in findings
        if f.entity_type == "PERSON" and f.start < start + len(kept) and start < f.end
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Approved by: Finance Team",
        "Payee: Acme Corp",
        "Spouse: none",
        "Driver: unknown",
        "Bill to: 1 Market St, San Francisco",  # an invoice's label, no name
        "Contact: Support Team",
        '{"patient": "stable", "title": "Gone with the Wind"}',
        'To: "ACME Billing" <billing@acme.com>, Support Team <help@acme.com>',
        "call home, ask them, email support, text me, call back later, ping everyone",
    ],
)
def test_when_a_persons_field_holds_no_name_then_no_person_is_found(
    analyzer: AnalyzerEngine, text: str
) -> None:
    assert "PERSON" not in {f.entity_type for f in scan_text(analyzer, text, CFG)}


@pytest.mark.parametrize(
    "text",
    [
        "General Electric reported earnings on Monday.",
        "Major League Baseball opens in April.",
        "Private Equity firms bought the chain.",
        "I spoke with Detective Ruiz yesterday.",  # NER read the title as a place
    ],
)
def test_when_a_title_stands_before_an_ordinary_word_then_neither_is_a_name_or_a_place(
    analyzer: AnalyzerEngine, text: str
) -> None:
    found = {text[f.start : f.end] for f in scan_text(analyzer, text, CFG)}

    assert not found & {"Electric", "League", "Equity", "General", "Major", "Private", "Detective"}


def test_when_a_stronger_finding_covers_part_of_another_then_the_rest_stays_found(
    analyzer: AnalyzerEngine,
) -> None:
    # NER's name runs over the first word of a military address: the address's other
    # characters are still found, not left in the text
    text = "Dreux Joly\nPaxata\nPSC 3294, Box 9168\nAPO AA 61487\n"
    findings = scan_text(analyzer, text, CFG)
    covered = {i for f in findings for i in range(f.start, f.end)}
    address = text.index("PSC")
    assert all(i in covered for i in range(address, text.index("61487") + 5) if text[i].isalnum())


def test_when_findings_overlap_then_only_the_stronger_longer_one_is_kept(
    analyzer: AnalyzerEngine,
) -> None:
    # Presidio's URL recognizer also matches "example.com" inside the address.
    text = "Contact john.smith@example.com for details."

    findings = scan_text(analyzer, text, CFG)

    assert [(f.entity_type, text[f.start : f.end]) for f in findings] == [
        ("EMAIL_ADDRESS", "john.smith@example.com")
    ]


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        # Identifiers announced by their name, in formats no recognizer validates (made up).
        ("Patient ID QRT-4471902 was attached to the wrong chart.", "QRT-4471902", "ID_NUMBER"),
        ("Her medical record number is MRN_55120983.", "MRN_55120983", "ID_NUMBER"),
        ("employee ID number 40213-NORTH was left in the log", "40213-NORTH", "ID_NUMBER"),
        ("insurance policy #77310-KQ lapsed", "77310-KQ", "ID_NUMBER"),
        # Identifiers named by their acronym: a vehicle's, a prescriber's, other countries'
        ("Customer ID CUST-0099182; VIN 1HGCM82633A004352", "1HGCM82633A004352", "ID_NUMBER"),
        ("Physician: Anika Sørensen, MD; NPI 1234567893; DEA AS1234563.", "AS1234563", "ID_NUMBER"),
        ("The borrower, Ahmad bin Ismail, NRIC S1234567D, agrees", "S1234567D", "ID_NUMBER"),
        ("Passenger JOHN SMITH seat 14C PNR X7YQ2P LHR-JFK", "X7YQ2P", "ID_NUMBER"),
        ("Your booking reference: X7YQ2P", "X7YQ2P", "ID_NUMBER"),
        ("A license plate 7ABC123 was seen leaving.", "7ABC123", "ID_NUMBER"),
        # A bank's branch code, a sort code written like a date; an account's short keys
        ("Please pay into sort code 20-11-62, account 41526378.", "20-11-62", "ID_NUMBER"),
        ("BSB 062-000 account 12345678", "062-000", "ID_NUMBER"),
        ("IFSC: SBIN0001234, A/C No. 30012345678", "SBIN0001234", "ID_NUMBER"),
        ("Sort code: 40-11-62 Acc no: 71234567", "71234567", "ID_NUMBER"),
        ("sort code 20-11-62 a/c 31926819", "31926819", "ID_NUMBER"),
        # A person's record of another kind: a tenancy, an application, a case, a loan
        ("Flat 14B, 300 Riverside Drive. Tenant ref TNT-0045521.", "TNT-0045521", "ID_NUMBER"),
        ("Your case number is MKT-771902.", "MKT-771902", "ID_NUMBER"),
        ("Loan no. 55-2093-118 is closed.", "55-2093-118", "ID_NUMBER"),
        # A validated or more specific type on the same characters keeps its own type.
        ("Please wire it to account number 45120988731 today.", "45120988731", "US_BANK_NUMBER"),
        ("Her social security number is 536-22-8145.", "536-22-8145", "US_SSN"),
    ],
)
def test_when_an_identifier_is_announced_by_its_name_then_it_is_found_and_a_specific_type_wins(
    analyzer: AnalyzerEngine, text: str, value: str, entity: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert (entity, value) in [(f.entity_type, text[f.start : f.end]) for f in findings]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # a driver's licence guessed from the digits inside a keyed identifier's value
        ("I still have not had my offer letter. Applicant ID 24-UG-118302.", "24-UG-118302"),
        # an identifier read from the digits of a code takes the whole code
        ("Please update the policy for vehicle HMQ-7730291.", "HMQ-7730291"),
        ("Change the beneficiary on my life policy LP-00938812 please.", "LP-00938812"),
        # an invisible character inside the code stays inside it
        ("Please update the policy for vehicle HMQ-773\u200b0291.", "HMQ-773\u200b0291"),
    ],
)
def test_when_part_of_a_code_reads_as_an_identifier_then_the_whole_code_is_found(
    analyzer: AnalyzerEngine, text: str, value: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert value in [text[f.start : f.end] for f in findings]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("患者病历号：MZ20240013，因咳嗽发热就诊。", "MZ20240013"),
        ("请联系工号A1023的同事处理。", "A1023"),
        ("会员卡号为88012345，积分已到账。", "88012345"),
        ("帮我改一下收货地址，订单号 DD20240312889901", "DD20240312889901"),
        ("亲，我的快递单号SF1402283391765一直没到", "SF1402283391765"),
        # the identifier word ends any record's name: a complaint, a refund, a licence
        ("客户投诉单 / 投诉编号：TS-2024-008861 / 投诉人：褚晓燕", "TS-2024-008861"),
        ("退款单号TK8820240611003，感谢您的耐心等待～", "TK8820240611003"),
        ("您申请的个人消费贷款（合同编号XF2024060800217）已审批通过", "XF2024060800217"),
        ("受托人系北京某律师事务所律师，执业证号11101201010123456", "11101201010123456"),
        # a record's number right after its name, with no identifier word
        ("订单 DD20240603771 已发货，物流：韵达快递 4312567890123", "4312567890123"),
        ("您的京东包裹JDVA21734568812今日派送", "JDVA21734568812"),
        ("收款银行卡：6214 8312 0567 8890。", "6214 8312 0567 8890"),  # no Luhn: still hers
        ("香港身份证号：Y123456(7)", "Y123456(7)"),  # the check character in brackets
    ],
)
def test_when_a_chinese_text_names_an_identifier_then_its_value_is_found(
    analyzer: AnalyzerEngine, text: str, value: str
) -> None:
    findings = scan_text(analyzer, text, CFG, language="zh")

    assert ("ID_NUMBER", value) in [(f.entity_type, text[f.start : f.end]) for f in findings]


@pytest.mark.parametrize(
    "text",
    [
        "Released under license Apache-2.0 in 2024.",
        "The account was opened on 2024-01-05.",
        "Patient ID: 05/01/2024 was the admission date.",  # a date, no identifier
        "The acc no longer works; see the a/c unit.",
        "What is the ID of the element? Use id 3 in the CSS.",
        "Check the account number format before you submit.",
        "Read RFC 7231 and plate 12 of the atlas.",  # no name of an identifier
        "We sin 1234 times; fin 2024.",  # lower-case words, not the acronyms
        "In case no 2 fails, retry.",  # a case, but no identifier's value
        "Please return #2 of the forms. Order 10000 units.",  # a count, a quantity
        "Use the #general channel for case #A.",  # a channel, a letter
    ],
)
def test_when_no_identifier_follows_its_name_then_no_id_number_is_found(
    analyzer: AnalyzerEngine, text: str
) -> None:
    assert "ID_NUMBER" not in {f.entity_type for f in scan_text(analyzer, text, CFG)}


def test_when_threshold_is_raised_then_weaker_findings_are_dropped(
    analyzer: AnalyzerEngine,
) -> None:
    text = "Call me at (212) 555-0123 tomorrow."  # the phone scores 0.4 without context

    strict = CFG.model_copy(update={"score_threshold": 0.9})

    assert scan_text(analyzer, text, CFG)
    assert scan_text(analyzer, text, strict) == []


def test_when_records_have_several_messages_then_findings_name_each_field(
    analyzer: AnalyzerEngine,
) -> None:
    record = _record("rec-1", "Mail bob@example.com please.", "Done, Alice Walker replied.")
    named = Record(
        id="rec-2",
        source_file="t.jsonl",
        source_line=2,
        format="alpaca",
        messages=(Message("user", "Reach me at 212-555-0123.", field="instruction"),),
    )

    results = scan_records([record, named], analyzer, CFG, batch_size=2)

    assert [record_id for record_id, _ in results] == ["rec-1", "rec-2"]
    assert {(f.field, f.entity_type) for f in results[0][1]} == {
        ("messages[0].content", "EMAIL_ADDRESS"),
        ("messages[1].content", "PERSON"),
    }
    assert [(f.field, f.entity_type) for f in results[1][1]] == [("instruction", "PHONE_NUMBER")]
    assert all(isinstance(f, Finding) and f.score >= CFG.score_threshold for f in results[0][1])


def _persons_per_message(analyzer, record: Record) -> list[list[str]]:
    [(_, findings)] = scan_records([record], analyzer, CFG)
    return [
        [
            message.content[f.start : f.end]
            for f in findings
            if f.field == f"messages[{i}].content" and f.entity_type == "PERSON"
        ]
        for i, message in enumerate(record.messages)
    ]


def test_a_name_introduced_in_one_message_is_found_in_the_others(analyzer) -> None:
    record = _record(
        "conv", "Dr. Olumide Adeyemi will see you.", "olumide adeyemi is on leave today."
    )
    zh = replace(
        _record("zh", "患者：高强，男，45岁。", "摘要：患者高强因上述症状就诊。"), language="zh"
    )

    assert _persons_per_message(analyzer, record)[1] == ["olumide", "adeyemi"]
    assert _persons_per_message(analyzer, zh)[1] == ["高强"]


def test_a_surname_with_a_title_is_the_person_the_record_names_in_full(analyzer) -> None:
    named = "我想给我爸爸张建国挂号，他的手机是13812345678"
    record = replace(_record("zh", named, "已为张先生预约周三上午的专家号。"), language="zh")
    other = replace(_record("zh", named, "已为王先生预约周三上午的专家号。"), language="zh")
    word = replace(_record("zh", named, "我们主张总体方案不变。"), language="zh")

    assert _persons_per_message(analyzer, record)[1] == ["张"]
    assert _persons_per_message(analyzer, other)[1] == []  # no 王 named: a title, as in news
    assert _persons_per_message(analyzer, word)[1] == []  # 张总 of 主张 + 总体


def test_a_carried_chinese_name_is_not_read_inside_a_longer_word(analyzer) -> None:
    record = replace(_record("zh", "患者：高强，男，45岁。", "请设置高强度密码。"), language="zh")
    assert _persons_per_message(analyzer, record)[1] == []


def test_a_word_ner_guessed_as_a_name_is_not_carried_to_other_messages(analyzer) -> None:
    # NER reads a sentence's first unknown word as a name; a reply's lower-case word stays
    record = _record("conv", "Blockchain is a ledger.", "So blockchain keeps every record?")
    assert _persons_per_message(analyzer, record)[1] == []


def _found_in_reply(analyzer, record: Record) -> set[tuple[str, str]]:
    [(_, findings)] = scan_records([record], analyzer, CFG)
    reply = record.messages[-1].content
    return {
        (reply[f.start : f.end], f.entity_type)
        for f in findings
        if f.field == f"messages[{len(record.messages) - 1}].content"
    }


@pytest.mark.parametrize(
    ("language", "question", "reply", "found"),
    [
        (
            "en",
            "For verification, can you confirm your date of birth?",
            "14/02/1988",
            "DATE_OF_BIRTH",
        ),
        (
            "en",
            "Thanks. Please confirm the date of birth on the policy.",
            "5 march 1957",
            "DATE_OF_BIRTH",
        ),
        # a Chinese id card number with a wrong check digit needs its key: the question holds it
        (
            "zh",
            "欧阳女士您好，为了核实身份，请提供您的身份证号码。",
            "110105199003154527",
            "CN_ID_CARD",
        ),
        ("zh", "好的，请问张建国的身份证号是多少？", "370102196207151234", "CN_ID_CARD"),
        # the key next to the answer: a Taiwan ID number after a request in traditional script
        ("zh", "陳小姐您好，為了確認身分，請提供您的身分證字號。", "A223456789", "ID_NUMBER"),
    ],
)
def test_a_short_reply_is_read_after_the_question_it_answers(
    analyzer, language, question, reply, found
) -> None:
    asked = replace(_record("conv", "hello", question, reply), language=language)
    alone = replace(_record("conv", "hello", reply), language=language)

    assert (reply, found) in _found_in_reply(analyzer, asked)
    assert (reply, found) not in _found_in_reply(analyzer, alone)  # the key is the question's


@pytest.mark.parametrize(
    ("roles", "question", "reply"),
    [
        # no question: a statement before the reply
        (("assistant", "user"), "We spoke about your date of birth.", "14/02/1988"),
        # a long reply is a message of its own, read alone
        (("assistant", "user"), "Can you confirm your date of birth?", "14/02/1988 " + "ok " * 40),
        # the same party twice: no answer
        (("user", "user"), "Can you confirm your date of birth?", "14/02/1988"),
    ],
)
def test_a_reply_that_answers_no_question_is_read_alone(analyzer, roles, question, reply) -> None:
    messages = tuple(
        Message(role, text) for role, text in zip(roles, (question, reply), strict=True)
    )
    record = replace(_record("conv"), messages=messages)

    assert "DATE_OF_BIRTH" not in {t for _, t in _found_in_reply(analyzer, record)}


def test_a_reply_read_after_its_question_adds_no_name_or_place(analyzer) -> None:
    # NER reads a reply differently after a question; names and places come from the reply alone
    record = _record("conv", "hello", "Where should we eat tonight?", "Try Carbone or Il Buco.")
    alone = _record("conv", "hello", "Try Carbone or Il Buco.")

    names = {t for t in _found_in_reply(analyzer, record) if t[1] in {"PERSON", "LOCATION"}}
    assert names == {t for t in _found_in_reply(analyzer, alone) if t[1] in {"PERSON", "LOCATION"}}


def _found_per_message(analyzer, record: Record) -> list[set[tuple[str, str]]]:
    [(_, findings)] = scan_records([record], analyzer, CFG)
    return [
        {
            (message.content[f.start : f.end], f.entity_type)
            for f in findings
            if f.field == f"messages[{i}].content"
        }
        for i, message in enumerate(record.messages)
    ]


@pytest.mark.parametrize(
    ("language", "first", "again", "value", "entity_type"),
    [
        (
            "en",
            "Hello, employee ID EMP-20931. My payslip is wrong.",
            "I can see the record for EMP-20931.",
            "EMP-20931",
            "ID_NUMBER",
        ),
        (
            "en",
            "locked out again. username mrossi2",
            "I've unlocked MROSSI2 for you.",
            "MROSSI2",
            None,
        ),
        # glued to Chinese text, the value is whole
        (
            "zh",
            "我的用户名 ljg_1975，积分被清零了",
            "查询到账户ljg_1975的积分已过期。",
            "ljg_1975",
            None,
        ),
    ],
)
def test_a_value_found_in_one_message_is_found_where_the_record_repeats_it(
    analyzer, language, first, again, value, entity_type
) -> None:
    record = replace(_record("conv", first, again), language=language)
    alone = replace(_record("conv", "hello", again), language=language)

    found = _found_per_message(analyzer, record)
    types_there = {t for v, t in found[0] if value.casefold() in v.casefold()}
    assert {t for v, t in found[1] if v == value} == types_there != set()
    assert entity_type is None or types_there == {entity_type}
    assert not {v for v, _ in _found_per_message(analyzer, alone)[1]} & {value}


@pytest.mark.parametrize(
    "again",
    [
        "Your reference is EMP-209310 now.",  # a longer token that holds the value
        "The team EMP-2093 meets today.",  # another value
    ],
)
def test_a_value_is_not_carried_into_a_longer_token_or_another_value(analyzer, again) -> None:
    record = _record("conv", "Hello, employee ID EMP-20931. My payslip is wrong.", again)
    assert not {t for _, t in _found_per_message(analyzer, record)[1]} & {"ID_NUMBER"}


def test_when_same_key_then_pseudonym_is_stable_and_well_formed() -> None:
    first = pseudonym("PERSON", "Jane Doe", key=KEY)

    assert first == pseudonym("PERSON", "Jane Doe", key=KEY)
    assert re.fullmatch(r"[A-Z][a-z'-]+ [A-Z][A-Za-z'-]+", first)  # a realistic name
    assert first != "Jane Doe"
    assert pseudonym("SECRET", "hunter2-password", key=KEY) == "[REDACTED]"
    assert pseudonym("NO_SUCH_TYPE", "x", key=KEY) == "<NO_SUCH_TYPE>"


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("PERSON", "Jane Doe", KEY), ("PERSON", "Jane Doe", OTHER_KEY)),
        (("PERSON", "Jane Doe", KEY), ("PERSON", "John Doe", KEY)),
        (("PERSON", "Jordan", KEY), ("LOCATION", "Jordan", KEY)),
    ],
)
def test_when_key_value_or_type_differs_then_pseudonym_differs(
    left: tuple[str, str, bytes], right: tuple[str, str, bytes]
) -> None:
    assert pseudonym(left[0], left[1], key=left[2]) != pseudonym(right[0], right[1], key=right[2])


RECORDS = [
    _record("rec-1", "Please email john.smith@example.com about invoice 7.", "Sure, done."),
    _record("rec-2", "Jane Doe called from 212-555-0123 about the delivery."),
    _record("rec-3", "Card 4111 1111 1111 1111 was charged; SSN 536-90-4399 on file."),
    _record("rec-4", "Server 192.168.1.20 failed; john.smith@example.com was paged."),
    _record("rec-5", "The quarterly report was approved on Monday."),
]
PII_VALUES = [
    "john.smith@example.com",
    "Jane Doe",
    "212-555-0123",
    "4111 1111 1111 1111",
    "536-90-4399",
    "192.168.1.20",
]


@pytest.fixture(scope="module")
def scrubbed(analyzer: AnalyzerEngine):
    return scrub_records(RECORDS, analyzer, CFG, key=KEY)


def test_when_scrubbed_then_no_original_value_remains(scrubbed) -> None:
    texts = "\n".join(record.text for record in scrubbed.records)

    for value in PII_VALUES:
        assert value not in texts


def test_when_scrubbed_then_records_keep_ids_order_and_untouched_text(scrubbed) -> None:
    assert [r.id for r in scrubbed.records] == [r.id for r in RECORDS]
    assert scrubbed.records[4] == RECORDS[4]
    assert scrubbed.records[0].messages[1] == RECORDS[0].messages[1]
    assert scrubbed.records_with_pii == 4
    assert scrubbed.entity_counts == {
        "CREDIT_CARD": 1,
        "EMAIL_ADDRESS": 2,
        "IP_ADDRESS": 1,
        "PERSON": 1,
        "PHONE_NUMBER": 1,
        "US_SSN": 1,
    }


def test_when_same_value_in_two_records_then_same_pseudonym(scrubbed) -> None:
    email = pseudonym("EMAIL_ADDRESS", "john.smith@example.com", key=KEY)

    assert email in scrubbed.records[0].text
    assert email in scrubbed.records[3].text
    assert scrubbed.records[1].text.startswith(pseudonym("PERSON", "Jane Doe", key=KEY))


def test_when_scrubbed_twice_with_same_key_then_output_is_identical(
    analyzer: AnalyzerEngine, scrubbed
) -> None:
    again = scrub_records(RECORDS, analyzer, CFG, key=KEY)
    other = scrub_records(RECORDS, analyzer, CFG, key=OTHER_KEY)

    assert again == scrubbed
    assert other.records[0].text != scrubbed.records[0].text


def test_when_scrubbed_then_residual_pii_is_zero(analyzer: AnalyzerEngine, scrubbed) -> None:
    assert residual_pii(RECORDS, analyzer, CFG)  # the raw records do carry PII
    assert residual_pii(scrubbed.records, analyzer, CFG) == {}


def test_when_a_ticket_tells_a_password_and_names_an_identifier_then_scrubbing_leaves_neither(
    analyzer: AnalyzerEngine,
) -> None:
    """End to end: a password told in words is redacted, an identifier read from its name gets
    a same-shape surrogate, and the stricter re-scan finds nothing left (values made up)."""
    records = [
        _record("rec-t1", "I can't log in: my password is Tr0ub4dor&3 since Monday."),
        _record("rec-t2", "Patient ID QRT-4471902 asked for a copy of the chart."),
        replace(
            _record("rec-t3", "登录账号zhangsan，密码Abc@2024。病历号：MZ20240013。"), language="zh"
        ),
    ]
    result = scrub_records(records, analyzer, CFG, key=KEY)
    texts = [m.content for r in result.records for m in r.messages]

    assert not any(v in t for t in texts for v in ("Tr0ub4dor&3", "QRT-4471902", "Abc@2024"))
    assert not any("MZ20240013" in t for t in texts)
    assert "[REDACTED]" in texts[0]
    assert re.search(r"Patient ID [A-Z]{3}-\d{7} asked", texts[1])  # same shape, other value
    assert residual_pii(result.records, analyzer, CFG) == {}


def test_when_a_post_names_handles_and_a_profile_then_scrubbing_leaves_none_of_them(
    analyzer: AnalyzerEngine,
) -> None:
    """End to end: handles get same-shape surrogates with their at sign, a profile's name and
    the surname it is later addressed by are replaced, the re-scan finds nothing (made up)."""
    records = [
        _record("rec-h1", "Thanks @ops_lead42, the build is green again."),
        replace(
            _record(
                "rec-h2", "真不错//@碧落食人来：转发微博。顾卫东，男，1965年出生。顾先生现任董事。"
            ),
            language="zh",
        ),
    ]
    result = scrub_records(records, analyzer, CFG, key=KEY)
    texts = [m.content for r in result.records for m in r.messages]

    assert "ops_lead42" not in texts[0] and re.search(r"Thanks @[a-z]{3}_[a-z]{4}\d\d,", texts[0])
    assert not any(v in texts[1] for v in ("碧落食人来", "顾卫东", "顾先生"))
    assert "//@" in texts[1] and "先生现任董事" in texts[1]
    assert residual_pii(result.records, analyzer, CFG) == {}


@pytest.mark.parametrize(
    "text",
    [
        "Dear <PERSON_3fa91c02>, your email <EMAIL_ADDRESS_3fa91c02> is on file.",
        "<PERSON_12345678> called <US_SSN_00000000> at <IP_ADDRESS_9f8e7d6c>.",
        "Hi <PERSON_aaaaaaaa>! <CREDIT_CARD_12341234> <US_BANK_NUMBER_12345678> "
        "<US_DRIVER_LICENSE_a1234567> <URL_abcdef12> <LOCATION_deadbeef> "
        "<PHONE_NUMBER_55501230> <US_PASSPORT_01234567> <IBAN_CODE_0badf00d>",
    ],
)
def test_when_text_holds_only_pseudonyms_then_no_recognizer_matches(
    analyzer: AnalyzerEngine, text: str
) -> None:
    raw = analyzer.analyze(
        text, language="en", entities=CFG.entities, score_threshold=CFG.score_threshold
    )

    assert raw == []
    assert scan_text(analyzer, text, CFG) == []


def test_when_key_is_too_short_then_scrub_refuses(analyzer: AnalyzerEngine) -> None:
    with pytest.raises(ValueError, match="SOVTUNE_PSEUDONYM_KEY"):
        scrub_records(RECORDS[:1], analyzer, CFG, key=b"short")


def test_when_scrubbing_then_nothing_logged_contains_a_value(
    analyzer: AnalyzerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        scrub_records(RECORDS, analyzer, CFG, key=KEY)

    for value in PII_VALUES:
        assert value not in caplog.text


def test_when_spacy_model_is_missing_then_build_fails_naming_the_setting() -> None:
    cfg = PIIConfig(spacy_model="en_core_web_nonexistent")

    with pytest.raises(PIIEngineError, match=r"pii\.spacy_model.*en_core_web_nonexistent"):
        build_analyzer(cfg)


def test_when_an_entity_has_no_recognizer_then_build_fails_naming_the_setting() -> None:
    cfg = PIIConfig(entities=["PERSON", "EMAIL_ADRESS"])  # a typo for EMAIL_ADDRESS

    with pytest.raises(PIIEngineError, match=r"pii\.entities.*EMAIL_ADRESS"):
        build_analyzer(cfg)


def test_when_analyzing_email_and_url_then_no_socket_is_opened() -> None:
    with watch_sockets() as events:
        fresh = build_analyzer(CFG)
        findings = scan_text(fresh, "Mail ops@example.co.uk or see https://example.org/x", CFG)

    assert {f.entity_type for f in findings} == {"EMAIL_ADDRESS", "URL"}
    assert events == []


def test_when_many_texts_then_two_processes_find_exactly_what_one_finds(
    analyzer: AnalyzerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        _record(f"r{i}", f"Jane Doe {i} wrote from jane{i}@acme.io, call 212-555-01{i:02d}.")
        for i in range(12)
    ] + [
        Record(
            "z",
            "t.jsonl",
            1,
            "chat",
            (Message("user", "我是王秀英，手机13800138000。"),),
            language="zh",
        )
    ]
    monkeypatch.setattr(pii, "PARALLEL_MIN_TEXTS", 10**9)
    one_process = scan_records(records, analyzer, CFG)
    monkeypatch.setattr(pii, "PARALLEL_MIN_TEXTS", 2)
    monkeypatch.setattr(pii, "_cores", lambda: 2)

    two_processes = scan_records(records, analyzer, CFG)

    assert two_processes == one_process
    assert {f.entity_type for _, findings in one_process for f in findings} >= {
        "PERSON",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CN_PHONE_NUMBER",
    }


@pytest.mark.timeout(120)
def test_when_sigterm_is_ignored_then_the_forked_worker_still_ends(
    analyzer: AnalyzerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process started under nohup or by some CI runners ignores SIGTERM, and its forked
    # children inherit that. A Pool ends its workers with SIGTERM while holding their task
    # queue's lock: a worker that ignored it waited on the lock for good (a 600 s CI hang).
    records = [_record(f"r{i}", f"Jane Doe {i} wrote from jane{i}@acme.io.") for i in range(8)]
    monkeypatch.setattr(pii, "PARALLEL_MIN_TEXTS", 2)
    monkeypatch.setattr(pii, "_cores", lambda: 2)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        for _ in range(3):
            assert len(scan_records(records, analyzer, CFG)) == len(records)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not multiprocessing.active_children()


def test_when_the_forked_worker_fails_then_the_scan_fails_naming_no_text(
    analyzer: AnalyzerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [_record(f"r{i}", f"Jane Doe {i} wrote from jane{i}@acme.io.") for i in range(8)]
    parent = os.getpid()
    real = pii._analyze_chunk

    def failing_in_child(*args, **kwargs):
        if os.getpid() != parent:
            raise ValueError("Jane Doe 3 wrote from jane3@acme.io")  # a text in the message
        return real(*args, **kwargs)

    monkeypatch.setattr(pii, "_analyze_chunk", failing_in_child)
    monkeypatch.setattr(pii, "PARALLEL_MIN_TEXTS", 2)
    monkeypatch.setattr(pii, "_cores", lambda: 2)

    with pytest.raises(pii.PIIEngineError) as raised:
        scan_records(records, analyzer, CFG)
    assert "ValueError" in str(raised.value)
    assert "Jane" not in str(raised.value) and "acme" not in str(raised.value)
    assert not multiprocessing.active_children()  # the worker ended, none left behind


def test_when_a_later_scrub_pass_runs_then_unchanged_messages_are_not_rescanned(
    analyzer: AnalyzerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _record("r", "Call Jane Doe at 212-555-0142.", "Thanks, that is all for today.")
    scanned: list[list[str]] = []
    original = pii._analyze_texts

    def remember(analyzer, texts, languages, cfg, **options):
        scanned.append(list(texts))
        return original(analyzer, texts, languages, cfg, **options)

    monkeypatch.setattr(pii, "_analyze_texts", remember)

    result = scrub_records([record], analyzer, CFG, key=KEY)

    assert len(scanned) >= 2  # a first pass, then the changed message again
    assert all(record.messages[1].content not in texts for texts in scanned[1:])
    assert result.records[0].messages[0].content != record.messages[0].content
    assert result.records[0].messages[1] == record.messages[1]
    assert residual_pii(result.records, analyzer, pii.residual_config(CFG)) == {}


def test_when_a_full_name_holds_an_ordinary_word_then_that_word_alone_is_no_name(
    analyzer: AnalyzerEngine,
) -> None:
    text = "Will Smith arrived late. Will you come tomorrow?"

    found = {(f.start, f.end) for f in scan_text(analyzer, text, CFG)}

    assert (0, 10) in found
    assert (25, 29) not in found  # "Will" opening the question


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # a sentence that opens with an ordinary word: NER reads it too (issue #15)
        ("Maybe it's under Caitlyn Schulz", "Caitlyn Schulz"),
        ("Thanks for the update. Please ask Marta Kowalczyk.", "Marta Kowalczyk"),
        ("The form is ready. I met miklós hajdu and Tomomi Nishiyama.", "Tomomi Nishiyama"),
    ],
)
def test_when_a_name_sits_in_any_sentence_then_it_is_found(
    analyzer: AnalyzerEngine, text: str, name: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert any(f.entity_type == "PERSON" and text[f.start : f.end] == name for f in findings)


def test_when_ner_reads_a_long_text_then_names_keep_their_offsets_in_the_text(
    analyzer: AnalyzerEngine,
) -> None:
    text = (
        "Thanks for the update. The license has been moved, so the software should activate. "
        "Please forward the contract to Penelope Markham before Friday."
    )
    name = "Penelope Markham"

    findings = scan_text(analyzer, text, CFG)

    assert any(f.entity_type == "PERSON" and text[f.start : f.end] == name for f in findings), (
        findings
    )


def test_when_artifacts_are_lazy_then_their_words_equal_the_tokens(
    analyzer: AnalyzerEngine,
) -> None:
    text = "Send the SSN: 078-05-1120 to the payroll office, please."
    doc = analyzer.nlp_engine.nlp["en"].make_doc(text)

    artifacts = analyzer.nlp_engine.tokens_only(text, "en")

    assert artifacts.tokens_indices == [token.idx for token in doc]
    assert artifacts.lemmas == [token.lower_ for token in doc]
    assert "ssn" in artifacts.keywords and "the" not in artifacts.keywords


def test_when_sentences_follow_a_name_then_the_name_span_stays_exact(
    analyzer: AnalyzerEngine,
) -> None:
    # Blanking the two later sentences to spaces (instead of leaving them out) made NER read
    # "Robert Adams." with its full stop: a finding the residual gate then counted.
    text = (
        "New matter for Robert Adams. The client wants to contest a non-compete clause in the "
        "employment contract. Please draft a short reply to the client."
    )

    persons = [
        text[f.start : f.end] for f in scan_text(analyzer, text, CFG) if f.entity_type == "PERSON"
    ]

    assert persons == ["Robert Adams"]


# --- language never hides a record (issue #15.3) ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "accepted", "verdict"),
    [
        # Latin script goes to the English pack, whatever a language guess would say
        ("My name is Rubija", ["en", "zh"], ("en", True)),
        ("Bonjour, je voudrais réserver une chambre.", ["en"], ("en", True)),
        ("Mr. Matthews grew up in ΑΛΑΣΣΑ.", ["en"], ("en", True)),  # a few Greek words
        ("x = π r²", ["en"], ("en", True)),  # a lone letter is a symbol
        ("12345 / 678", ["en", "zh"], ("en", True)),  # no word: the patterns read it
        ("浙商银行 John Smith", ["en", "zh"], ("zh", True)),  # Han: the Chinese pack (+ English)
        # fail closed: a text in a script no pack reads, or Han without the Chinese pack
        ("浙商银行 John Smith", ["en"], ("zh", False)),
        ("Привет, меня зовут Иван", ["en", "zh"], ("ru", False)),
        ("مرحبا بك في المدينة", ["en", "zh"], ("ar", False)),
        ("東京タワーに行きました", ["en", "zh"], ("ja", False)),  # kana: Japanese, not Chinese
        ("Hello 안녕하세요", ["en", "zh"], ("ko", False)),
    ],
)
def test_when_a_text_is_routed_then_its_script_decides(
    text: str, accepted: list[str], verdict: tuple[str, bool]
) -> None:
    assert language_verdict(text, accepted) == verdict


def test_when_a_text_is_refused_then_its_pattern_findings_are_still_reported(
    analyzer: AnalyzerEngine,
) -> None:
    text = "Пожалуйста, пишите мне на почту ivan@example.com или звоните +7 912 345-67-89"
    assert language_verdict(text, ["en", "zh"]) == ("ru", False)

    findings = pii.scan_refused(analyzer, text, CFG)

    found = {(text[f.start : f.end], f.entity_type) for f in findings}
    assert ("ivan@example.com", "EMAIL_ADDRESS") in found
    assert "PHONE_NUMBER" in {t for _, t in found}


def test_when_a_refused_text_holds_a_handle_in_han_then_it_is_still_reported(
    analyzer: AnalyzerEngine,
) -> None:
    text = "//@小雨要做快乐的上班族:あぁー吸わないで"  # kana: refused as Japanese
    assert language_verdict(text, ["en", "zh"]) == ("ja", False)

    found = {(text[f.start : f.end], f.entity_type) for f in pii.scan_refused(analyzer, text, CFG)}

    assert ("@小雨要做快乐的上班族", "USER_HANDLE") in found


def test_when_a_chinese_text_holds_latin_words_then_english_findings_hold_no_han(
    analyzer: AnalyzerEngine,
) -> None:
    text = "我的同事 John Smith 明天到，SSN 536-22-8726。"

    findings = scan_text(analyzer, text, CFG, language="zh")

    found = {(text[f.start : f.end], f.entity_type) for f in findings}
    assert ("John Smith", "PERSON") in found
    assert ("536-22-8726", "US_SSN") in found  # a recognizer only the English pack has
    assert all(not re.search(r"[\u4e00-\u9fff]", value) for value, t in found if t == "PERSON")


def test_when_text_holds_entities_presidio_does_not_map_then_no_warning_floods_the_log(
    analyzer: AnalyzerEngine, caplog: pytest.LogCaptureFixture
):
    # spaCy labels amounts, ordinals and buildings (CARDINAL, MONEY, ORDINAL, FAC): Presidio
    # logged a warning per such entity, and one per entity a language has no recognizer for;
    # a drop wrote about three lines per record of them to its step's stderr (the UI's compute log).
    english = _record(
        "r1", "I paid $1,200 for the 3rd ticket to the Golden Gate Bridge, 40 miles away."
    )
    chinese = replace(
        _record("r2", "张伟的电话是13812345678，住在北京市海淀区中关村大街27号。"), language="zh"
    )
    with caplog.at_level(logging.WARNING):
        findings = dict(scan_records([english, chinese], analyzer, CFG))
    assert [r.name for r in caplog.records if r.name.startswith("presidio")] == []
    # both packs still read their record: what each finds is unchanged
    assert {f.entity_type for f in findings["r2"]} == {"PERSON", "CN_PHONE_NUMBER", "LOCATION"}


def test_when_many_new_words_are_scanned_then_spacys_string_store_does_not_grow(
    analyzer: AnalyzerEngine,
):
    # spaCy keeps every word it reads for the life of the process: a scrub of a million
    # records grew with each new name, number and address. Scans read inside its memory zone.
    strings = analyzer.nlp_engine.nlp["en"].vocab.strings
    scan_records([_record("warm", "Maria Lopez wrote to maria@example.com.")], analyzer, CFG)
    before = len(strings)
    records = [
        _record(f"r{i}", f"Please ask Maria Lopez about invoice XQ{i}-{i * 7919}, Zorblat{i}.")
        for i in range(60)
    ]
    findings = dict(scan_records(records, analyzer, CFG))
    assert len(strings) == before
    # the words were read all the same: names found, offsets on the original text
    text = records[7].messages[0].content
    names = [text[f.start : f.end] for f in findings["r7"] if f.entity_type == "PERSON"]
    assert names == ["Maria Lopez"]


def test_the_context_enhancers_token_lookup_is_presidios_own_answer(analyzer) -> None:
    """`_OwnContextFirstEnhancer` finds a result's token by a binary search (Presidio walks the
    tokens once per result, the square of a long table's length): the same token for every
    offset, a result inside a token included; and the kept findings of `_resolve`, searched by
    position, are the ones a pairwise test keeps."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    from pipelines.steps.privacy.pii import _Disjoint, _OwnContextFirstEnhancer

    text = "Call Maria Lopez on 212-555-0101, licence ID AB-1000001; ext. 44."
    artifacts = analyzer.nlp_engine.process_texts([text], "en", batch_size=1)
    artifacts = next(iter(artifacts))
    ours = _OwnContextFirstEnhancer()
    for start in range(len(text)):
        expected = LemmaContextAwareEnhancer._find_index_of_match_token(
            "w", start, artifacts.tokens, artifacts.tokens_indices
        )
        assert (
            ours._find_index_of_match_token("w", start, artifacts.tokens, artifacts.tokens_indices)
            == expected
        )

    from presidio_analyzer import RecognizerResult

    held = _Disjoint()
    for start, end in [(10, 15), (0, 4), (20, 30), (16, 19)]:
        held.add(RecognizerResult("X", start, end, 0.5))
    for start, end in [(0, 40), (3, 11), (15, 16), (19, 20), (29, 35), (4, 10), (31, 33)]:
        pairwise = [r for r in held.items if r.start < end and start < r.end]
        assert held.overlapping(start, end) == pairwise
    held.remove(held.overlapping(12, 17))
    assert [(r.start, r.end) for r in held.items] == [(0, 4), (20, 30)]


@pytest.mark.parametrize(
    "text", ["订单 100 件已发货，合同 2024年签订，快递 3天到。", "编号：2024年6月"]
)
def test_a_chinese_records_name_before_a_quantity_or_a_date_names_no_identifier(
    analyzer: AnalyzerEngine, text: str
) -> None:
    findings = scan_text(analyzer, text, CFG, language="zh")

    assert [f for f in findings if f.entity_type == "ID_NUMBER"] == []


@pytest.mark.parametrize(
    ("text", "born"),
    [
        ("申请人：覃小龙，男，汉族，1990年8月5日生，住广西宾阳县。", ["1990年8月5日"]),
        ("其母亲（1950年3月22日生）于今日上午走失。", ["1950年3月22日"]),
        ("本合同自2024年1月1日生效。", []),  # in force from: no birth
        ("该批次于2023年5月6日生产。", []),  # made on
    ],
)
def test_a_date_that_sheng_follows_is_a_birth_date(
    analyzer: AnalyzerEngine, text: str, born: list[str]
) -> None:
    findings = scan_text(analyzer, text, CFG, language="zh")

    assert [text[f.start : f.end] for f in findings if f.entity_type == "DATE_OF_BIRTH"] == born


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ticket #INC-448210 | Customer: Rosa Delgado", "INC-448210"),  # # before letters
        ("Your package (tracking 1Z999AA10123456784) is out for delivery.", "1Z999AA10123456784"),
        ("Order confirmation #WEB-5521983 / Ship to: Emily Carter", "WEB-5521983"),
        ("Your loyalty number is LY-883019274.", "LY-883019274"),
        ("Your return has been received. RMA #: RMA-3381-2207.", "RMA-3381-2207"),
        ("HKID: A123456(3)", "A123456(3)"),  # a Hong Kong identity card, its check in brackets
    ],
)
def test_an_identifier_after_a_hash_or_a_carriers_prefix_is_found(
    analyzer: AnalyzerEngine, text: str, value: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert ("ID_NUMBER", value) in [(f.entity_type, text[f.start : f.end]) for f in findings]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Customer Hyun-woo Park called 4 times about ticket SR-77821.", "SR-77821"),
        ("Incident IR-2291: the card was charged twice.", "IR-2291"),  # four digits after letters
        ("Complaint #C-2024-0711 / delayed refund for booking BK-559201", "C-2024-0711"),
        ("Complaint #C-2024-0711 / delayed refund for booking BK-559201", "BK-559201"),
        ("Amount returned to Visa. Ref: RF-55102.", "RF-55102"),
        ("Policy: AUTO-NG-2024-118734 / Renewal premium", "AUTO-NG-2024-118734"),
        ("She reported her card 4716 0301 8852 2197 was charged twice.", "4716 0301 8852 2197"),
        ("Your driver is arriving in a white Toyota Prius, plate 8KJD214.", "8KJD214"),
        ("Vehicle: 2019 Honda Civic, plate LND 482 KJ / Renewal", "LND 482 KJ"),
        ("The car with number plate KA 05 MN 1234 was towed.", "KA 05 MN 1234"),
        ("Vehicle inspection: Reg. no. KA 05 MN 4821, owner Suresh Nair", "KA 05 MN 4821"),
        ("Your visa application (ref. VN-2024-55123) has been approved.", "VN-2024-55123"),
        ("Car reg KA01AB1234 was clamped.", "KA01AB1234"),
        ("收款账户：中国银行 6013 8200 0123 9874 561 （户名：邹丽萍）", "6013 8200 0123 9874 561"),
        ("至您的帳戶（中國信託 822-5301-2846-9371），備註：五月房租。", "822-5301-2846-9371"),
    ],
)
def test_a_records_number_a_plate_or_an_account_written_right_after_its_word_is_found(
    analyzer: AnalyzerEngine, text: str, value: str
) -> None:
    language = "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
    findings = scan_text(analyzer, text, CFG, language=language)

    assert value in [text[f.start : f.end] for f in findings]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("See plate 14 in the appendix; the plate was broken.", "en"),  # a figure, a dish
        ("Vehicle: 2019 Honda Civic, blue.", "en"),  # a model year
        ("I paid by card 20 times in 2024. Ticket sales rose.", "en"),
        ("The incident response team met; case closed.", "en"),
        ("公司在招商银行 500000元的贷款，工商银行 2024年报。", "zh"),  # an amount, a year
    ],
)
def test_a_records_word_before_a_quantity_a_figure_or_nothing_names_no_identifier(
    analyzer: AnalyzerEngine, text: str, language: str
) -> None:
    findings = scan_text(analyzer, text, CFG, language=language)

    assert [text[f.start : f.end] for f in findings if f.entity_type == "ID_NUMBER"] == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("For 4B, 211 Ocean Ave, Brooklyn, NY 11225", "4B, 211 Ocean Ave, Brooklyn, NY 11225"),
        ("Unit: Blk 412 Ang Mo Kio Ave 10, #08-1234.", "Blk 412 Ang Mo Kio Ave 10, #08-1234"),
        (
            "Unit: 1204, 350 W 42nd St, New York, NY 10036",
            "Unit: 1204, 350 W 42nd St, New York, NY 10036",
        ),
    ],
)
def test_a_flat_or_a_block_written_before_its_street_belongs_to_the_address(
    analyzer: AnalyzerEngine, text: str, address: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    # the whole address inside one finding (a form's label before it may be taken too)
    at = text.index(address)
    assert any(
        f.start <= at and at + len(address) <= f.end
        for f in findings
        if f.entity_type == "LOCATION"
    )


def test_a_number_and_a_letter_before_words_that_are_no_street_is_no_address(
    analyzer: AnalyzerEngine,
) -> None:
    text = "We sold 4B, 211 of them went to Ocean Ave."

    assert [f for f in scan_text(analyzer, text, CFG) if f.entity_type == "LOCATION"] == []


@pytest.mark.parametrize(
    ("text", "born"),
    [
        ("Patient: Ali Khan, 45 y/o, DOB: 01-Jan-1979, NHS No: 943 476 5919", "01-Jan-1979"),
        ("Born: 14-Feb-1979", "14-Feb-1979"),
        ("Student: Mia Chen, DOB 2 Sept 2015, Year 4", "2 Sept 2015"),  # no street: a date
    ],
)
def test_a_birth_date_with_its_month_abbreviated_between_hyphens_or_spaces_is_found(
    analyzer: AnalyzerEngine, text: str, born: str
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert [text[f.start : f.end] for f in findings if f.entity_type == "DATE_OF_BIRTH"] == [born]
    assert [f for f in findings if f.entity_type == "LOCATION"] == []


def _with_spans(text: str, *values: tuple[str, str]) -> Record:
    """A scrubbed record whose `values` (surrogate, type) the scrubber recorded as spans."""
    spans = tuple((text.index(v), text.index(v) + len(v), kind) for v, kind in values)
    message = Message("assistant", text, scrub_spans=spans)
    return replace(_record("scrubbed", text), messages=(message,))


def test_a_residual_finding_across_surrogates_side_by_side_is_none_but_text_between_counts(
    analyzer: AnalyzerEngine,
) -> None:
    # the demo's scrub wrote a town, then an IBAN: the re-scan read "Kimberlyhaven GB" (a town
    # and a country) across both, which is our own text
    address = "47414 Samuel Springs, North Anneport, NH 20221"
    text = f"Your address on file is now {address} Kimberlyhaven GB51HPSZ91414098086216 will do."
    record = _with_spans(
        text,
        (address, "LOCATION"),
        ("Kimberlyhaven", "LOCATION"),
        ("GB51HPSZ91414098086216", "IBAN_CODE"),
    )
    assert residual_pii([record], analyzer, pii.residual_config(CFG)) == {}
    # a person's e-mail between two surrogates is no join: it is counted
    text = "Send it to Amy Lee, jane.doe@example.com, Bob Ray today."
    record = _with_spans(text, ("Amy Lee", "PERSON"), ("Bob Ray", "PERSON"))
    assert residual_pii([record], analyzer, pii.residual_config(CFG)).get("EMAIL_ADDRESS") == 1
