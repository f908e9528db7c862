"""PERSON in English text beyond spaCy NER: titles, initials, introductions, any letter case.

spaCy's small model misses lower-case names and names it has not seen in a similar context.
This rule layer adds names that (a) follow a title (Mr, Mrs, Ms, Dr, Prof), (b) follow an
introduction ("my name is", "this is", "I'm", "contact") and are listed, or are two words of
which one is outside the spaCy model's vocabulary, (c) are a first name followed by a last
name from Faker's en_US name lists (US census based), in any case, with optional initials, or
(d) are two capitalized words inside a sentence, one of them outside the model's vocabulary,
that NER did not tag as a product, event, date or other non-name entity.
"""

import re
from functools import lru_cache

from faker.providers.person.en_US import Provider as PersonProvider
from spacy.lang.en.stop_words import STOP_WORDS

from pipelines.steps.privacy.recognizers.base import RegexRecognizer, Spans
from pipelines.steps.privacy.recognizers.en_names import (
    PARTICLES as NAME_PARTICLES,
)
from pipelines.steps.privacy.recognizers.en_names import (
    in_a_dictionary,
    is_english,
    known_place,
    made_of_english,
    name_evidence,
    name_lexicon,
)

_WORD = r"[A-Za-z][a-z'\-]+|[A-Z][A-Z'\-]+"
_INITIAL = r"[A-Za-z]\.(?:\s?[A-Za-z]\.){0,4}"  # at most five initials: "A. A. A. ..." stays linear
_NAME = rf"(?:(?:{_INITIAL})\s?)?(?:{_WORD})(?:\s(?:{_INITIAL}|{_WORD})){{0,2}}"
TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Dame)\.?"
INTRODUCTIONS = r"(?:my name is|name:|this is|i am|i'm|signed|regards,|contact|patient|client)"


@lru_cache(maxsize=1)
def listed_names() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-cased first and last names of the name rule (Faker en_US, stop words removed)."""
    firsts = {
        n.lower() for n in (*PersonProvider.first_names_male, *PersonProvider.first_names_female)
    }
    lasts = {n.lower() for n in PersonProvider.last_names}
    common = set(STOP_WORDS)
    return frozenset(firsts - common), frozenset(lasts - common)


STRONG_EVIDENCE = 0.8
"""A name's score from an introduction, a title or a relation (an introduction's listed name is
0.8, a title's 0.9): evidence enough that the same word elsewhere in the text is the name."""
_INTRODUCTION = re.compile(rf"\b{INTRODUCTIONS}\s+", re.IGNORECASE)
# Two capitalized words inside a sentence (after a lower-case word or a comma), not part of a
# longer capitalized phrase: "forward the contract to Micheala Crinion before Friday".
_CAPITALIZED_PAIR = re.compile(
    r"(?<=[a-z,;] )([A-Z][a-z'\-]+) (Ma?c[A-Z][a-z]+|O'[A-Z][a-z]+|[A-Z][a-z'\-]+)\b"
    r"(?! [A-Z])"
)
_NAME_LIKE_LABELS = frozenset(
    {"PERSON", "LOCATION", "GPE", "LOC", "ORG", "ORGANIZATION", "NORP", "NRP"}
)
"""NER labels (spaCy's and Presidio's names for them) en_core_web_sm gives unfamiliar names."""
_TWO_WORDS = re.compile(r"([A-Za-z][a-z'\-]+|[A-Z'\-]+)\s([A-Za-z][a-z'\-]+|[A-Z'\-]+)")
_LOWER_PAIR = re.compile(r"(?<![\w'’\-])([a-z\u00df-\u024f]{2,}) (?=([a-z\u00df-\u024f]{2,})\b)")
_AFTER_A_NAME = re.compile(
    r"\s*(?:$|[,.;:!?)]|\s(?:from|and|here|speaking|with|at|of|in|on)\b)", re.IGNORECASE
)


def _model_words(nlp_artifacts) -> frozenset[str]:
    """The spaCy model's own vocabulary (`PackNlpEngine.model_words`), empty when unknown."""
    engine = getattr(nlp_artifacts, "nlp_engine", None)
    return getattr(engine, "model_words", frozenset())


def _english_words(nlp_artifacts) -> frozenset[str]:
    """Ordinary English words (`PackNlpEngine.english_words`), empty when unknown."""
    engine = getattr(nlp_artifacts, "nlp_engine", None)
    return getattr(engine, "english_words", frozenset())


_SPEECH_VERBS = (
    "said", "says", "told", "added", "asked", "replied", "wrote", "explained", "insisted",
    "admitted", "recalled", "declared", "stated", "warned", "argued", "complained", "conceded",
    "answered",
)  # fmt: skip
_SPOKEN_TO = ("told", "asked", "wrote")
_SAYS = "(?:" + "|".join(_SPEECH_VERBS) + ")"
_COMPANY_WORDS = frozenset({"ltd", "inc", "corp", "co", "plc", "llc", "ag", "gmbh", "group"})
_DESK_WORDS = frozenset(
    {"team", "support", "billing", "sales", "service", "services", "help", "desk", "admin"}
    | {"info", "noreply", "no-reply", "notifications", "newsletter", "department", "office"}
)
"""Words of a shared mailbox's display name (`Support Team`, `Billing Dept`): no person."""
_DISPLAY_NAME = re.compile(
    r"(?:\"(?P<quoted>[^\"<>@\n]{2,64})\""
    r"|(?<![^\s:,;])(?P<bare>[A-Z][\w'’.\-]*(?:[ \t]+[A-Z][\w'’.\-]*){0,3}))"
    r"[ \t]*<[^<>\s@]{1,64}@[^<>\s@]{1,255}>"
)
"""A mail's display name, quoted or a run of capitalized words, before its address in angle
brackets."""
_SPEAKER_WORD = r"(?P<name>[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*)"
_SAYS_AFTER = "(?:" + "|".join(v for v in _SPEECH_VERBS if v not in _SPOKEN_TO) + ")"
"""Verbs a speaker follows ("said Eyles ."); not told or asked, whose next word is the one
spoken to ("told Reuters")."""
_SPEAKER_BEFORE = re.compile(rf"(?<![\w'’.\-]){_SPEAKER_WORD} {_SAYS}\b")
_SPEAKER_AFTER = re.compile(rf"\b{_SAYS_AFTER} {_SPEAKER_WORD}(?=\s*(?:[.,;:!?\"”]|$))")
_WHO = re.compile(rf"(?<![\w'’.\-]){_SPEAKER_WORD}[ \t]*,[ \t]*who(?:se)?\b")
"""One capitalized word before ", who" or ", whose": a relative clause that a person's name
opens ("Lebed , who flew into Chechnya", "Estes , whose only win")."""
_PERSONS_ACTS = (
    "lives", "lived", "smiled", "smiles", "laughed", "laughs", "cried", "shouted", "yelled",
    "whispered", "sighed", "nodded", "frowned", "grinned", "married", "divorced",
)  # fmt: skip
_HUMAN_NOUNS = (
    "person", "man", "woman", "girl", "boy", "guy", "lady", "gentleman", "kid", "child",
    "friend", "mother", "father", "wife", "husband", "daughter", "son", "sister", "brother",
)  # fmt: skip
_ACTS = re.compile(
    rf"(?<![\w'’.\-]){_SPEAKER_WORD} (?:{'|'.join(_PERSONS_ACTS)}\b"
    rf"|(?:is|was) (?:a|an) (?:[a-z]+ ){{0,3}}?(?:{'|'.join(_HUMAN_NOUNS)})\b)"
)
"""One capitalized word that does what only a person does (`Jacob lives on …`, `Enrico
shouted at Gary`) or is a person (`Scott is a very sympathetic person`): a place does not live
or laugh and is no woman, so the same word test as a speaker's."""


def _missed_thing(text: str, start: int, end: int, english: frozenset[str]) -> bool:
    """After "miss" in lower case, the verb, a place or a thing ("will miss Australia 's
    fixture", "miss Christmas"): a place or ordinary words are no name after it; a name ("I
    miss Sarah") still is one."""
    if text[max(0, start - 5) : start] != "miss ":
        return False
    value = text[start:end]
    words = re.findall(r"[A-Za-z'\-]+", value)
    return known_place(value) or bool(
        english and words and all(in_a_dictionary(w, english) for w in words)
    )


_LOWER_TITLE = re.compile(r"(?:^|(?<=[^\w'’\-]))(?:mr|mrs|ms|mx|dr|prof|sir|madam|dame)\.?\s$")
"""A title written in lower case, right before a finding (`ms excel`, `mr clean`)."""


def _lower_case_thing(text: str, start: int, end: int, english: frozenset[str]) -> bool:
    """After a title in lower case, lower-case ordinary words that no name list holds are a
    thing ("open it in ms word", "ms excel crashed", "mr clean"): Presidio's patterns ignore
    case, so "ms" read as the title. A listed name stays one ("dr smith", "ms priya")."""
    if not _LOWER_TITLE.search(text, max(0, start - 7), start):
        return False
    words = re.findall(r"[A-Za-z'\-]+", text[start:end])
    return bool(
        english
        and words
        and all(w.islower() and is_english(w, english) for w in words)
        and not any(_listed_anywhere(w, frozenset(), frozenset()) for w in words)
    )


def _listed_anywhere(word: str, firsts: frozenset[str], lasts: frozenset[str]) -> bool:
    """In the en_US lists or in the lexicon of every locale (`en_names.name_lexicon`)."""
    lowered = word.lower()
    every_first, every_last = name_lexicon()
    return any(lowered in names for names in (firsts, lasts, every_first, every_last))


_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*\.?")
_POSSESSIVE = re.compile(r"['’]s$")
_THOROUGHFARES = frozenset({"street", "road", "avenue", "lane", "boulevard", "st", "rd", "ave"})
"""Words that end a street's name and no person's (a run of names before one is a street)."""
_NOT_A_NAME_LABELS = frozenset({"WORK_OF_ART", "PRODUCT", "EVENT", "LAW", "LANGUAGE"})
"""NER labels that veto a capitalized run: titles of works, products, events, laws."""
MAX_RUN_WORDS = 5
CALENDAR_WORDS = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
    | {"january", "february", "march", "april", "may", "june", "july", "august"}
    | {"september", "october", "november", "december"}
)
"""Capitalized by English spelling, listed as given names in some locales: never a name alone."""
FIELD_LABELS = frozenset(
    {"attn", "fwd", "fw", "re", "cc", "bcc", "subj", "encl", "enc", "ref", "tel", "fax", "mob"}
    | {"ext", "dept", "memo", "msg", "fyi", "eta", "tbd", "asap", "nb", "ps", "pps", "cf"}
)
"""The abbreviated field labels of letters and mail headers ("Attn:", "Fwd:", "Encl:"): before
a colon a label, never a speaker's name."""


_TO_LABELS = frozenset({"bill", "ship", "sold", "remit", "deliver", "send", "mail"})
"""Invoice and shipping labels before "to:" ("Bill to:", "Ship to:"): Bill is no name there."""
_TO_COLON = re.compile(r"[ \t]+to[ \t]*:", re.IGNORECASE)


def field_label(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` is a field label of a letter or a mail header (`FIELD_LABELS`)
    right before a colon, or of an invoice before "to:" ("Bill to:", `_TO_LABELS`)."""
    word = text[start:end].lower()
    if word in _TO_LABELS:
        return _TO_COLON.match(text, end) is not None
    return word in FIELD_LABELS and text[end : end + 2].lstrip().startswith(":")


_KEY_BEFORE = re.compile(r"""["'][ \t]*[:=][ \t]*["']$""")


def _a_quoted_value(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` is a quoted value after a quoted key (`{"name": "Beatriz
    Nascimento"}`): NER reads a quoted run as a work's title, but there the quotes are the
    record's syntax."""
    return bool(_KEY_BEFORE.search(text, max(0, start - 8), start)) and text[end : end + 1] in "\"'"


def _opened_by_a_word(text: str, start: int, words: list[str], english) -> bool:
    """Whether a run of three capitalized words or more opens a sentence with an ordinary
    English word no name list holds (`Contact`, `Ask`, `Email` + a full name): the word is
    capitalized for the sentence, and the rest of the run may be a name."""
    if len(words) < 3 or not (start == 0 or _SENTENCE_START.search(text, max(0, start - 8), start)):
        return False
    if all(word.isupper() for word in words):
        return False  # a heading or a shout ("YES YANDERE SIM")
    firsts, lasts = name_lexicon()
    first = words[0].lower()
    return (
        is_english(words[0], english)
        and first not in STOP_WORDS  # "The Princess Royal", "The Dow Jones average"
        and first not in firsts
        and first not in lasts
    )


def capitalized_runs(text: str) -> list[tuple[int, int, list[str]]]:
    """`(start, end, words)` of each run of capitalized words and initials on one line.

    Words are joined by single spaces; lower-case name particles ("ten", "van") may sit
    inside; a possessive "'s" is left out of the span.
    """
    runs: list[tuple[int, int, list[str]]] = []
    current: list[re.Match] = []

    def close() -> None:
        while current and current[-1].group().lower() in NAME_PARTICLES:
            current.pop()
        if current and len(current) <= MAX_RUN_WORDS:
            last = current[-1]
            end = last.start() + len(_POSSESSIVE.sub("", last.group().rstrip(".")))
            if _INITIAL_ONLY.match(last.group()):
                end = last.end()
            words = [_POSSESSIVE.sub("", m.group()) for m in current]
            runs.append((current[0].start(), end, words))
        current.clear()

    for match in _TOKEN.finditer(text):
        word = match.group()
        joined = bool(current) and text[current[-1].end() : match.start()] in (" ", "\t")
        if current and not joined:
            close()
        if word[0].isupper() or (current and word.lower() in NAME_PARTICLES):
            current.append(match)
            if word.endswith(".") and not _INITIAL_ONLY.match(word):
                close()  # "Inc." ends a sentence or a name
        elif current:
            close()
    close()
    return runs


_INITIAL_ONLY = re.compile(r"^[A-Z]\.?$")
MAX_WORD = 30
"""Longest word the name rules read as a name (no listed name comes near): bounded repeats keep
a run of `a-a-a-...` or of list items linear (issue #16.3)."""
MAX_LIST = 12
"""Most items before the last of a list of names read as one list ("a, b, ... and z")."""
_LISTED_PAIR = re.compile(
    rf"\b([A-Za-z][a-z'\-]{{1,{MAX_WORD}}}|[A-Z'\-]{{1,{MAX_WORD}}})\s+"
    rf"([A-Za-z][a-z'\-]{{1,{MAX_WORD}}}|[A-Z'\-]{{1,{MAX_WORD}}})\b"
)
_SINGLE_CAPITALIZED = re.compile(
    r"(?<![\w'’\-])([A-Z][a-z\u00df-\u024f]+)(?:(?=['’]s\b)|(?!['’]?[\w\-]))"
)
_IN_A_RUN = re.compile(r" [A-Z]")
_WORD_LIST = re.compile(
    rf"(?<![\w'’\-])[^\W\d_]{{1,{MAX_WORD}}}(?:, [^\W\d_]{{1,{MAX_WORD}}}){{1,{MAX_LIST}}},? "
    rf"(?:and|or|&) [^\W\d_]+(?![\w\-])"
)
_LIST_MEMBER = re.compile(r"(?<![\w'’\-])(?!(?:and|or)\b)[^\W\d_]+")
_COORDINATED = re.compile(
    rf"(?<![\w'’\-])[A-Z][^\W\d_]{{1,{MAX_WORD}}}"
    rf"(?:, [A-Z][^\W\d_]{{1,{MAX_WORD}}}){{0,{MAX_LIST}}},? "
    r"(?:and|or|&|to) [A-Z][^\W\d_]+(?![\w\-]| [A-Z])"
)
_LINE_START = re.compile(r"(?:^|\n)[ \t>\"']*$")
_SPEECH = re.compile(r":[ \t]*[\"'“]?[ \t]*[A-Za-z][^\n]*[a-z]")
_SENTENCE_START = re.compile(r"(?:^|[.!?][\"')]?\s+|\n)[ \t\"'“(]*$")
_LOWER_NEXT = re.compile(r" [a-z]")
_DETERMINER = re.compile(r"\b(?:the|a|an|of|in|to the|at the)\s$", re.IGNORECASE)
_INTRODUCES_ONE = re.compile(
    r"\b(?:name is|names? are|call me|calls me|called me|last name\?|named)\s+"
    r"([^\W\d_]{2,})\b(?-i:(?![ \t]+[A-Z]))",
    re.IGNORECASE,
)
"""One word after "name is", "call me" …, not the first of a capitalized full name (read as a
run). The look-ahead keeps its case: `my name is borna jerković` is `borna`."""
_AFTER_LOWER_WORD = re.compile(r"(?:^|[\s(\"'])[a-z][\w'’\-]*[,;]?['\"]? $")
GREETING = (
    r"hi|hello|hey|hiya|dear|thanks|thank you|thx|cheers|congrats|congratulations|bye|goodbye|"
    r"good (?:morning|afternoon|evening|night)"
    r"|(?<!this )(?<!that )(?<!the )(?<!every )(?<!each )(?<!tomorrow )(?<!yesterday )morning"
    r"|welcome(?: back)?|miss you|love you"
)
_GREETED = re.compile(
    rf"(?<![\w'’\-])(?:{GREETING})[,!]?[ \t]+"
    rf"([^\W\d_]{{2,{MAX_WORD}}}(?:-[^\W\d_]{{2,{MAX_WORD}}})?)(?![\w'’\-])",
    re.IGNORECASE,
)
"""A greeting or thanks, then one word: the person the message is addressed to (`Hi Fleur ,`,
`Thanks Nick`, `hey titi nice video`, `Hello Ji-hoon!`)."""
_SIGNED_WITH_DESK = re.compile(
    rf"(?:^|(?<=[.!?,\n]))[ \t]*(?:[-–—][ \t]*)?([A-Z][^\W\d_]{{1,{MAX_WORD}}})"
    r"[ \t]*\([A-Za-z][^()\n]{0,40}\)[ \t]*$"
)
"""A name alone at a message's end with the writer's desk in brackets: a signature
(`Regards, Funmilayo (HR Shared Services)`, `Priyanka (IT)`)."""
_CONTACTED = re.compile(
    rf"(?<![\w'’\-])(?i:ask|tell|call|email|e-mail|ping|cc|text|message|contact|remind|invite)"
    rf"[ \t]+([^\W\d_]{{2,{MAX_WORD}}})(?![\w'’\-]| [A-Z])"
)
"""A verb of contact, then a word: the person contacted (`Ask Priya about it`, `pls call dave
on 0412 …`: in lower case only a listed name that is no English word, by `named`)."""
_CLOSING = re.compile(
    r"(?:^|\n)[ \t]*(?i:thanks|thank you|many thanks|best|best wishes|best regards|"
    r"kind regards|warm regards|regards|cheers|sincerely|yours(?: truly| sincerely)?|"
    r"take care|all the best|love)[,!.]?[ \t]*\r?\n[ \t]*"
    rf"([A-Z][^\W\d_]{{1,{MAX_WORD}}})[ \t]*(?=\r?\n|$)"
)
"""A sign-off, then a name alone on the next line (`Best,\nPriya`)."""
_VOCATIVE = re.compile(
    rf"(?:^|(?<=[.!?\n]))[ \t\"'“]*([^\W\d_]{{2,{MAX_WORD}}})[ \t]*,[ \t]*"
    r"(?:[^\W\d_]+[ \t]+){0,3}?(?i:you|your|yours|u|ur|please|pls|plz)(?![\w'’\-])"
)
"""One word that opens a sentence, then a comma and, within four words, the one spoken to or a
request (`Loey , do you …`, `John, could you check …`, `Priya, please send …`)."""
_HERE = re.compile(
    rf"(?:^|(?<=[.!?,;:\n]))[ \t\"'“]*([A-Z][^\W\d_]{{1,{MAX_WORD}}})[ \t]+here"
    r"(?=[ \t]*(?:$|[,.!:;—\-(]|(?:from|with|at|in|on)\b))"
)
"""A capitalized word opening a sentence or a clause, then "here" and the desk, a pause or the
end: the writer naming themself (`Hi team, Rajesh here from billing`, `Jen here!`)."""
_KIN_WORDS = (
    r"wife|husband|spouse|partner|fianc[eé]e?|boyfriend|girlfriend|son|daughter|kids?|child|"
    r"children|baby|mother|mom|mum|mommy|mummy|father|dad|daddy|parents?|brother|sister|"
    r"siblings?|twin|uncle|aunt|auntie|cousin|nephew|niece|grandson|granddaughter|grandchild|"
    r"grandmother|grandfather|grandma|grandpa|granny|stepson|stepdaughter|stepmother|"
    r"stepfather|mother-in-law|father-in-law|son-in-law|daughter-in-law|brother-in-law|"
    r"sister-in-law|friend|roommate|flatmate|neighbou?r|colleague|co-?worker"
)
_NOT_KIN_AFTER = (
    r"(?![ \t]+(?i:compan(?:y|ies)|firm|organi[sz]ation|brand|group|site|network|station|"
    r"ship|store|paper|city|cities|school|bank|fund|product|project|app|account|process)\b)"
)
"""After "sister", "parent", "partner" …, what makes the relation a business's or a thing's
(`Acme's sister company`, `our partner bank`)."""
_KIN_MODIFIER = (
    r"(?i:(?:late|little|big|baby|twin|older|younger|elder|oldest|youngest|eldest|best|ex)"
    r"[- \t]+)?"
)
"""What may stand between the possessive and the relation (`my late husband`, `her ex-wife`)."""
_KIN = re.compile(
    r"(?<![\w'’\-])(?i:my|his|her|our|their|your|[^\W\d_]+['’]s)[ \t]+"
    rf"{_KIN_MODIFIER}(?i:{_KIN_WORDS}){_NOT_KIN_AFTER},?[ \t]+"
    rf"([^\W\d_]{{2,{MAX_WORD}}}(?:[ \t]+[A-Z][^\W\d_]{{1,{MAX_WORD}}})?)(?![\w'’\-])"
)
"""A relative or a friend, then the name: `my wife Danielle`, `her son jake`, `John's sister,
Lisa`. The relation says a person follows, as a title does, in any case."""
_KIN_OF = re.compile(
    rf"(?<![\w'’\-])([^\W\d_]{{2,{MAX_WORD}}})['’]s[ \t]+"
    rf"{_KIN_MODIFIER}(?i:{_KIN_WORDS})(?![\w'’\-]){_NOT_KIN_AFTER}"
)
"""A name, then 's and a relation: `Asya's kid`, `i'm roberto's daughter`. Only a person has
a wife or a daughter."""


def _unlisted_name(text: str, start: int, model_words: frozenset[str]) -> int | None:
    """End of a two-word name after an introduction that no name list holds, if it is one
    (else of a one-word name after a self-introduction, `_unlisted_word`).

    "this is orlaith foran from the logistics group": two words, neither a stop word, ending
    where a name ends (punctuation, "from", "and", "here" ...), at least one of them a word the
    spaCy model's vocabulary never saw. Ordinary words after an introduction ("this is great
    news from HR") are all in that vocabulary; rare names are not.
    """
    match = _TWO_WORDS.match(text, start)
    if match is None or not model_words or not _AFTER_A_NAME.match(text, match.end()):
        return _unlisted_word(text, start, model_words)
    words = [match.group(1).lower(), match.group(2).lower()]
    if any(word in STOP_WORDS for word in words) or all(word in model_words for word in words):
        return _unlisted_word(text, start, model_words)  # "this is tunde here"
    return match.end()


_ONE_WORD = re.compile(r"[A-Za-z][a-z'\-]{2,}|[A-Z][A-Z'\-]{2,}")
_AFTER_A_LOWER_NAME = re.compile(r"\s*(?:$|[,.;:!?)]|\s(?:from|here|speaking)\b)", re.IGNORECASE)
_SELF_INTRODUCTION = re.compile(r"(?:this is|my name is|i am|i'm|im)\s+$", re.IGNORECASE)


def _unlisted_word(text: str, start: int, model_words: frozenset[str]) -> int | None:
    """End of a one-word name after a self-introduction (`hi this is rohit, can I …`, `I'm
    Aoife.`) that no name list holds: a word the spaCy model's vocabulary never saw, where a
    name ends (punctuation, "from", "here" …; in lower case not before "and" or "with", where a
    chat's misspelt word runs on); ordinary and chat words are in that vocabulary (`this is
    great,`, `this is soooo,`)."""
    if not _SELF_INTRODUCTION.search(text, max(0, start - 12), start):
        return None
    match = _ONE_WORD.match(text, start)
    if match is None or not _AFTER_A_NAME.match(text, match.end()):
        return None
    if match.group().islower() and not _AFTER_A_LOWER_NAME.match(text, match.end()):
        return None  # "i am subed and i liked …": a chat's misspelt word runs on
    word = match.group().lower()
    if word in STOP_WORDS or word in model_words:
        return None
    return match.end()


def _word_kind(word: str, english, model_words) -> tuple[bool, bool, bool]:
    """`(listed, ordinary, rare)`: a given or family name of the name lexicon, an ordinary
    English word, and neither of them nor a word the spaCy model's vocabulary holds."""
    firsts, lasts = name_lexicon()
    lowered = word.lower()
    listed = lowered in firsts or lowered in lasts
    ordinary = is_english(word, english)
    return listed, ordinary, not listed and not ordinary and lowered not in model_words


ROLE_TITLES = (
    "nurse", "detective", "officer", "deputy", "inspector", "trooper", "agent", "judge",
    "justice", "attorney", "coach", "pastor", "rabbi", "imam", "reverend", "father", "professor",
    "senator", "governor", "mayor", "sheriff", "marshal", "warden", "paramedic", "therapist",
    "midwife", "surgeon", "councillor", "councilor", "councilmember", "commissioner",
    "superintendent", "constable", "sergeant", "lieutenant", "captain", "colonel", "corporal",
    "private", "admiral", "commander", "major", "general", "chief", "president", "secretary",
    "minister", "ambassador", "chancellor", "dean", "principal",
)  # fmt: skip
"""Ranks, offices and occupations written before a person's name as a title ("Detective Ruiz",
"Nurse Ratched"), in either case."""
_ROLE_ABBREVIATIONS = (
    "Sgt", "Lt", "Capt", "Cpl", "Pvt", "Cmdr", "Det", "Insp", "Supt", "Col", "Gen", "Maj", "Adm",
    "Rev", "Fr", "Sen", "Rep", "Gov", "Ofc",
)  # fmt: skip
_ROLE_TITLED = re.compile(
    r"(?<![\w'’.\-])(?:(?i:"
    + "|".join(ROLE_TITLES)
    + r")|(?:"
    + "|".join(_ROLE_ABBREVIATIONS)
    + r")\.?) (?P<name>[A-Z][a-z]+(?:['’\-][A-Z]?[a-z]+)*)(?![\w'’\-])"
)
"""A role's title, then one capitalized word: the name when the name lists hold it or no
dictionary does (`EnPersonRecognizer._by_role`)."""

PERSON_FIELDS = (
    "account holder", "cardholder", "card holder", "beneficiary", "borrower", "co-borrower",
    "guarantor", "applicant", "co-applicant", "insured", "policyholder", "policy holder",
    "tenant", "landlord", "next of kin", "emergency contact", "witness", "signed by",
    "prepared by", "approved by", "requested by", "submitted by", "reported by", "caller",
    "payee", "payer", "sender", "recipient", "guardian", "spouse", "claimant", "defendant",
    "plaintiff", "petitioner", "respondent", "decedent", "deceased", "victim", "suspect",
    "employee", "customer", "member", "student", "driver", "owner", "resident", "physician",
    "referring physician", "attending", "nurse", "agent", "representative", "account name",
    "patient", "contact",
)  # fmt: skip
"""A form's or a record's field whose value is a person's name ("Account holder: jane doe",
"Next of kin: Ruth Okafor", "Signed by: m. ito"): the label is the evidence, in any case."""
_FIELD_VALUE = re.compile(
    r"(?i:(?<![\w\-])(?:"
    + "|".join(re.escape(f).replace(r"\ ", "[ _]") for f in PERSON_FIELDS)
    + r")(?:'s)?"
    r"(?:[ \t_]+(?:full[ \t_]+)?name)?)[\"']?[ \t]*:[ \t]*[\"']?(?P<value>[^\W\d_][\w'’.\-]*"
    r"(?:[ \t][^\W\d_][\w'’.\-]*){0,3})(?=[ \t]*(?:$|[\n,;(\"']|[ \t]{2}|\t))",
    re.MULTILINE,
)
"""A person's field, its colon and a value of one to four words up to the line's end, a comma,
a bracket, a closing quote or a form's gap (two spaces or a tab); also a record's key
(`"customer_name": "jane doe"`, `next_of_kin: ruth okafor`)."""
_PLACE_LABELS = frozenset({"LOCATION", "GPE", "LOC", "FAC"})
"""NER's labels of a place, as the pack's engine maps them (GPE and LOC read as LOCATION)."""
_INVERTED_GIVEN = re.compile(
    r"[ \t]*,[ \t]*(?P<given>[A-Z][A-Za-z'’\-]+(?:[ \t]+(?:[A-Z]\.?|[A-Z][A-Za-z'’\-]+)){0,2})"
    r"(?=[ \t]*(?:$|[\n.;(\"']|[ \t]{2}|\t))",
    re.MULTILINE,
)
"""After a field's surname, its given names and initials, up to the field's end."""
FIELD_PLACEHOLDERS = frozenset(
    {"unknown", "tbd", "tba", "tbc", "n/a", "na", "none", "redacted", "withheld", "pending",
     "anonymous", "declined", "self", "same", "various", "unnamed", "xxx"}
)  # fmt: skip
"""What a form writes where no name is given: no name, whatever the name lists hold."""

_ROLE_BEFORE = re.compile(r"(?i:patient|client|contact)\s+$")
"""Introductions that only name a role, after which a verb is as likely as a name."""
_ABBREVIATIONS = r"(?:e\.g|i\.e|a\.m|p\.m|n\.b|p\.s|c\.f|a\.k\.a|u\.s|u\.k|d\.c)\.(?!\w)"
"""Abbreviations written as initials, which a name's initials are not."""


class EnPersonRecognizer(RegexRecognizer):
    """Names after titles and introductions, and listed first + last names in any case."""

    ENTITY = "PERSON"
    PATTERNS = (
        # Above spaCy's fixed 0.85: "Dr. Spain" is a person even where NER says GPE.
        # initials with or without their full stops ("Mr T Ahmed", "Dr J K Rowling": British
        # forms and letters write them bare; then a capitalized word, not "Sir I am")
        (
            rf"\b{TITLES}\s(?P<value>(?:{_INITIAL}\s?|(?:(?-i:[A-Z])\s){{1,3}}(?=(?-i:[A-Z][a-z])))?{_WORD}"
            rf"(?:\s{_WORD})?)",
            0.9,
        ),
        (rf"\b{INTRODUCTIONS}\s+(?P<value>{_NAME})", 0.3),
        # initials, then a capitalized word: its case kept (the recognizer ignores case), and
        # no abbreviation of Latin or of the clock ("e.g. Python", "9 a.m. Meeting")
        (rf"(?<![\w.])(?!{_ABBREVIATIONS})(?P<value>{_INITIAL}\s?(?-i:[A-Z])[a-z'\-]+)", 0.5),
    )
    CONTEXT = ()

    def validate(self, value: str) -> bool:
        return value.split()[-1].lower() not in STOP_WORDS

    def analyze(self, text, entities, nlp_artifacts=None):
        if self.ENTITY not in entities:
            return []
        firsts, lasts = listed_names()
        results = []
        english = _english_words(nlp_artifacts)
        for result in super().analyze(text, entities, nlp_artifacts):
            if _missed_thing(text, result.start, result.end, english) or _lower_case_thing(
                text, result.start, result.end, english
            ):
                continue
            words = re.findall(r"[A-Za-z'\-]+", text[result.start : result.end])
            known = [_listed_anywhere(w, firsts, lasts) for w in words if len(w) > 1]
            # An introduction alone is weak evidence; a listed name after it is strong.
            if result.score < 0.4:
                if not known or not known[0]:
                    continue
                # "The patient said she …": after a noun that only names a role, a word in lower
                # case that is an ordinary word too ("said", "mark") is the verb, not the name
                if (
                    _ROLE_BEFORE.search(text, max(0, result.start - 12), result.start)
                    and words[0].islower()
                    and in_a_dictionary(words[0], english)
                ):
                    continue
                # Trim trailing words that are not names ("this is jane doe from sales").
                end = result.start
                for word, is_name in zip(
                    re.finditer(r"\S+", text[result.start : result.end]),
                    [*known, False],
                    strict=False,
                ):
                    if not is_name:
                        break
                    end = result.start + word.end()
                result.end = end
                result.score = 0.8
            results.append(result)
        for match in _LISTED_PAIR.finditer(text):
            first, last = match.group(1).lower(), match.group(2).lower()
            if first in firsts and last in lasts:
                results.append(self._result(*match.span(), 0.65, "name list"))
        model_words = _model_words(nlp_artifacts)
        # en_core_web_sm tags unfamiliar personal names ORG ("Micheala Crinion") or NORP
        # ("Tegan MacNulty"), so those do not veto the pair: a rare two-word organization name
        # is replaced too (text lost, nothing leaked); a product, event, date or other does.
        other_entities = Spans(
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ not in _NAME_LIKE_LABELS
        )
        for match in _CAPITALIZED_PAIR.finditer(text):
            start, end = match.span()
            words = [match.group(1).lower(), match.group(2).lower()]
            if (
                model_words
                and not any(word in STOP_WORDS for word in words)
                and not all(word in model_words for word in words)
                and not other_entities.overlaps(start, end)
            ):
                results.append(self._result(start, end, 0.5, "capitalized rare pair"))
        for match in _INTRODUCTION.finditer(text):
            end = _unlisted_name(text, match.end(), model_words)
            if end is not None:
                results.append(self._result(match.end(), end, 0.6, "introduction, rare words"))
        results += self._lexicon_names(text, nlp_artifacts, model_words)
        results += self._speakers(text, nlp_artifacts, english, firsts, lasts)
        results += self._by_role(text, english, firsts, lasts)
        results += self._by_field(text, english, model_words, nlp_artifacts)
        results += self._display_names(text, english, model_words)
        return results

    def _display_names(self, text: str, english, model_words) -> list:
        """The display name before a mail address in angle brackets (`"Okafor, Chidi"
        <chidi.okafor@firm.ng>`, `From: Chidi Okafor <…>`): a person's, also written surname
        first, where a word of it is a listed name or no dictionary's and none a company's or a
        desk's (`"ACME Billing" <billing@…>`, `Support Team <…>`)."""
        if not english or "<" not in text or "@" not in text:
            return []
        results = []
        for match in _DISPLAY_NAME.finditer(text):
            group = "quoted" if match.group("quoted") is not None else "bare"
            start, end = match.span(group)
            value = match.group(group)
            words = [w.strip(".,") for w in value.replace(",", " ").split()]
            lowered = [w.lower() for w in words if w]
            if not lowered or any(w in _COMPANY_WORDS or w in _DESK_WORDS for w in lowered):
                continue
            kinds = [_word_kind(w, english, model_words) for w in words if len(w) > 1]
            if any(listed or rare for listed, _, rare in kinds):
                results.append(self._result(start, end, 0.85, "a mail's display name"))
        return results

    def _by_field(self, text: str, english, model_words, nlp_artifacts) -> list:
        """The value of a person's field in a form (`PERSON_FIELDS`: "Account holder: jane
        doe", "Next of kin: Ruth Okafor"), in any case, where a word of it is a listed name or
        no dictionary's and none is a company's ("Payee: Acme Corp"); all ordinary words are
        no name ("Approved by: Finance Team", "Spouse: none")."""
        if not english or ":" not in text:
            return []
        results = []
        for match in _FIELD_VALUE.finditer(text):
            value, (start, end) = match.group("value"), match.span("value")
            if value.endswith(".") and len(value.split()[-1]) > 2:
                value, end = value[:-1], end - 1  # the sentence's full stop, not an initial's
            words = [w.rstrip(".") for w in value.split()]
            lowered = [w.lower() for w in words]
            if any(w in _COMPANY_WORDS for w in lowered) or all(w in STOP_WORDS for w in lowered):
                continue
            if any(w in FIELD_PLACEHOLDERS for w in lowered):
                continue
            kinds = [(w, *_word_kind(w, english, model_words)) for w in words if len(w) > 1]
            if any(
                rare or (listed and (not ordinary or w[0].isupper()))
                for w, listed, ordinary, rare in kinds
            ):
                end = self._given_after(text, end, english, model_words, nlp_artifacts)
                results.append(self._result(start, end, 0.85, "a person's field"))
        return results

    @staticmethod
    def _given_after(text: str, end: int, english, model_words, nlp_artifacts) -> int:
        """The end of a field's name written surname first (`Patient: Gupta, Anil.`, `Name:
        OKONKWO, Ngozi A`): after the comma, given names and initials up to the field's end,
        each a listed name, no dictionary's, or one NER reads as a person's (`Anil` is also a
        plant), and none a place's (`Bell, Texas`); an ordinary word that is none of these ends
        it (`Lee, Sales Manager`). `end` where there is none."""
        match = _INVERTED_GIVEN.match(text, end)
        if not match:
            return end
        entities = getattr(nlp_artifacts, "entities", None) or ()
        persons = Spans((e.start_char, e.end_char) for e in entities if e.label_ == "PERSON")
        places = Spans((e.start_char, e.end_char) for e in entities if e.label_ in _PLACE_LABELS)
        for word in re.finditer(r"\S+", match.group("given")):
            start, stop = match.start("given") + word.start(), match.start("given") + word.end()
            value = word.group().rstrip(".")
            if len(value) < 2:
                continue  # an initial
            listed, _, rare = _word_kind(value, english, model_words)
            if known_place(value) or places.overlaps(start, stop) or value.lower() in STOP_WORDS:
                return end
            if not (listed or rare or persons.contains(start, start + len(value))):
                return end
        return match.end("given")

    def _by_role(self, text: str, english, firsts, lasts) -> list:
        """The word after a role's title (`ROLE_TITLES`: "Detective Ruiz", "Sgt. Okafor",
        "nurse Patel"): a name where the name lists hold it or it is no dictionary word, and no
        place's; an ordinary word after the title is a thing's name ("General Electric", "Major
        League", "Private Equity"), as is a title after a title ("Chief Justice")."""
        if not english:
            return []
        results = []
        for match in _ROLE_TITLED.finditer(text):
            word, (start, end) = match.group("name"), match.span("name")
            lowered = word.lower()
            if lowered in STOP_WORDS or lowered in ROLE_TITLES or known_place(word):
                continue
            if _listed_anywhere(word, firsts, lasts) or not in_a_dictionary(word, english):
                results.append(self._result(start, end, 0.85, "after a role's title"))
        return results

    def _speakers(self, text: str, nlp_artifacts, english, firsts, lasts) -> list:
        """One capitalized word that says something ("Woods said", "Lebed told reporters",
        "said Eyles .") or opens a clause of who or whose ("Lebed , who flew …"): such a word
        is a person, or an organisation, which NER reads as one (its reading vetoes), or an
        ordinary word no name list holds ("Police said", "Officials said"). Pronouns and other
        stop words never."""
        if not english:
            return []
        # NER's one-word ORG is often an unfamiliar name ("Tarango said"); a longer one is an
        # organisation the word belongs to ("the White House said")
        vetoes = Spans(
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ != "PERSON"
            and (entity.label_ != "ORGANIZATION" or " " in entity.text.strip())
        )
        # but what has something ("Microsoft, whose shares fell") is one as often as not
        organisations = Spans(
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ == "ORGANIZATION"
        )
        results = []
        for match in (
            *_SPEAKER_BEFORE.finditer(text),
            *_SPEAKER_AFTER.finditer(text),
            *_WHO.finditer(text),
            *_ACTS.finditer(text),
        ):
            word, (start, end) = match.group("name"), match.span("name")
            if (
                word.lower() in STOP_WORDS
                or word.lower() in _COMPANY_WORDS
                or text[max(0, start - 3) : start] == "of "
                or vetoes.overlaps(start, end)
                or (match.group().endswith("whose") and organisations.overlaps(start, end))
            ):
                continue
            listed = _listed_anywhere(word, firsts, lasts)
            if listed or not in_a_dictionary(word, english):
                results.append(self._result(start, end, 0.6, "speaker"))
        return results

    def _lexicon_names(self, text: str, nlp_artifacts, model_words) -> list:
        """Capitalized runs that the name lexicons call a name, and lower-case listed pairs.

        A run is vetoed where NER read a work, product, event or building in it.
        """
        english = _english_words(nlp_artifacts)
        if not english:
            return []
        vetoed = [
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ in _NOT_A_NAME_LABELS
            and not _a_quoted_value(text, entity.start_char, entity.end_char)
        ]
        results = []
        vetoes = Spans(vetoed)
        for start, end, words in capitalized_runs(text):
            if vetoes.overlaps(start, end) or words[-1].lower() in _THOROUGHFARES:
                continue  # a street's name ("the Baker Street meeting room")
            score = name_evidence(words, english, model_words)
            if score is None and _opened_by_a_word(text, start, words, english):
                # "Contact Søren Kierkegaard at ...": a sentence's capitalized first word
                start = text.find(words[1], start + len(words[0]))
                score = name_evidence(words[1:], english, model_words)
            if score is not None:
                results.append(self._result(start, end, score, "name lexicon"))
        labelled = [
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ not in ("PERSON", "ORGANIZATION")
        ]
        results += self._single_names(text, english, Spans(vetoed + labelled), model_words)
        firsts, lasts = name_lexicon()
        for match in _LOWER_PAIR.finditer(text):
            first, last = match.group(1), match.group(2)
            last_english = is_english(last, english)
            if (
                first in firsts
                and (last in lasts or (last not in model_words and not last_english))
                and not (last_english and is_english(first, english))
            ):
                results.append(
                    self._result(match.start(1), match.end(2), 0.5, "lower-case listed pair")
                )
        results += self._name_lists(text, english, model_words)
        return results + self._repeated(text, results, nlp_artifacts, english)

    def _name_lists(self, text: str, english, model_words) -> list:
        """Lists of three or more single words, in any case, that are mostly given names
        ("they had 3: silvana, kristina and caleb"): every listed or rare member is a name.
        Half the members or more must be listed given names that are no English word."""
        firsts, _ = name_lexicon()
        results = []
        for match in _WORD_LIST.finditer(text):
            members = list(_LIST_MEMBER.finditer(match.group()))
            if len(members) < 3:
                continue
            words = [m.group().lower() for m in members]
            strong = sum(w in firsts and not is_english(w, english) for w in words)
            if strong * 2 < len(words):
                continue
            for member, word in zip(members, words, strict=True):
                if word in firsts or (word not in model_words and not is_english(word, english)):
                    start = match.start() + member.start()
                    results.append(self._result(start, start + len(word), 0.5, "list of names"))
        return results

    def _single_names(self, text: str, english, vetoed, model_words) -> list:
        """One name alone, where its place in the text says it is one.

        A listed name inside a sentence ("shouted at Todd", "my kid Florence"); a listed or
        rare word as a speaker ("Destiny: Remember me?"), as the subject that opens a sentence
        when it is no English word ("Vsevolod is very reliable"), or after "name is" /
        "call me" ("My name is Rubija"). Never where NER read a place, a date or a nationality
        (`vetoed`), never a weekday or month.
        """
        firsts, lasts = name_lexicon()
        results = []
        for match in _SINGLE_CAPITALIZED.finditer(text):
            word = match.group(1)
            lowered = word.lower()
            listed, ordinary, rare = _word_kind(word, english, model_words)
            if not (listed or rare) or lowered in CALENDAR_WORDS:
                continue
            start, end = match.span(1)
            before = text[max(0, start - 16) : start]
            speaker = bool(_LINE_START.search(before)) and bool(_SPEECH.match(text, end))
            if speaker and field_label(text, start, end):
                continue
            if speaker and not listed and len(word) < 3:
                continue  # a form's abbreviation ("Rx:", "Dx:"), no unlisted name's length
            if speaker and not _IN_A_RUN.match(text, end):
                results.append(self._result(start, end, 0.6, "speaker"))
                continue
            if ordinary and vetoed.overlaps(start, end):
                continue
            alone = not _IN_A_RUN.match(text, end)
            inside = (
                listed
                and bool(_AFTER_LOWER_WORD.search(before))
                # "of" opens a place as often as a name ("the city of Florence"), but one acts
                # on behalf of a person or an organisation
                and (not _DETERMINER.search(before) or before.endswith("behalf of "))
            )
            # a new word of the trade made of English ones opens a record as often ("Timesheet
            # approved.", "Onboarding checklist for ..."): not a name by its place alone
            opening = (
                not ordinary
                and bool(_SENTENCE_START.search(before))
                and bool(_LOWER_NEXT.match(text, end))
                and (listed or not made_of_english(word, english))
            )
            if alone and (inside or opening):
                results.append(self._result(start, end, 0.45, "name alone"))
        results += self._addressed(text, english, vetoed, model_words)
        results += self._relatives(text, english, model_words)
        for match in _INTRODUCES_ONE.finditer(text):
            word = match.group(1)
            lowered = word.lower()
            # an ordinary word by both dictionaries that no name list holds ("my name is not
            # important"); WordNet's famous surnames are none ("last name? Boyle", "Nielsen")
            if in_a_dictionary(word, english) and lowered not in firsts and lowered not in lasts:
                continue
            if lowered in firsts or lowered in lasts or lowered not in model_words:
                # above NER's 0.85: "last name? Boyle" is a name even where NER says place
                results.append(self._result(*match.span(1), 0.9, "introduced name"))
        return results

    def _relatives(self, text: str, english, model_words) -> list:
        """The name after a relation (`_KIN`: `my kid Alina`, `his wife Naina`, `my son jake`)
        or before one (`_KIN_OF`: `Asya's kid`, `roberto's daughter`).

        A capitalized word is a name where a name list holds it or it is a word no dictionary
        and no model knows (`_word_kind`); a lower-case word only where a name list holds it
        and it is no English word (`my son jake`, not `my son finally`). A capitalized second
        word joins it as the family name by the same test. Scored 0.9 like a title, above
        NER's place reading of an unfamiliar given name ("Alina" GPE): the relation outweighs
        it. Never a stop word, a weekday or month."""
        results = []
        for match in _KIN.finditer(text):
            start = end = match.start(1)
            for part in re.finditer(r"[^\W\d_]+", match.group(1)):
                word, lowered = part.group(), part.group().lower()
                if lowered in STOP_WORDS or lowered in CALENDAR_WORDS:
                    break
                listed, ordinary, rare = _word_kind(word, english, model_words)
                if word[0].isupper() and not (listed or rare):
                    break
                if word[0].islower() and not (listed and not ordinary):
                    break
                end = match.start(1) + part.end()
            if end > start:
                results.append(self._result(start, end, 0.9, "after a relation"))
        for match in _KIN_OF.finditer(text):
            word = match.group(1)
            lowered = word.lower()
            if lowered in STOP_WORDS or lowered in CALENDAR_WORDS or known_place(word):
                continue  # "Jordan's neighbour" is a country's
            listed, ordinary, rare = _word_kind(word, english, model_words)
            if (listed or rare) if word[0].isupper() else (listed and not ordinary):
                results.append(self._result(*match.span(1), 0.9, "has a relation"))
        return results

    def _addressed(self, text: str, english, vetoed, model_words) -> list:
        """A name alone where a message addresses or signs with it: after a greeting or thanks
        (`Hi Fleur ,`, `thanks Nick`), after a verb of contact (`Ask Priya`), alone on the line
        after a sign-off (`Best,` then `Priya`), opening a sentence that speaks to someone
        (`Loey , do you …`, `John, please …`), or naming the writer (`Rajesh here from
        billing`). The word is a listed
        name (one that is also an English word, Nick or Lily, only when capitalized) or a rare
        word no dictionary and no model knows; never a stop word ("hi all", "thanks again"), a
        weekday or month, or an ordinary word NER read as a place."""

        def named(word: str, start: int) -> bool:
            lowered = word.lower()
            if lowered in STOP_WORDS or lowered in CALENDAR_WORDS:
                return False
            listed, ordinary, rare = _word_kind(word, english, model_words)
            if ordinary and vetoed.overlaps(start, start + len(word)):
                return False
            return rare or (listed and (word[0].isupper() or not ordinary))

        results = []
        for pattern, score, why in (
            (_GREETED, 0.6, "greeted"),
            (_CONTACTED, 0.55, "contacted"),
            (_CLOSING, 0.6, "signed"),
            (_VOCATIVE, 0.55, "spoken to"),
            (_HERE, 0.6, "signs as here"),
            (_SIGNED_WITH_DESK, 0.6, "signs with a desk"),
        ):
            for match in pattern.finditer(text):
                word, start = match.group(1), match.start(1)
                if named(word, start) and not _IN_A_RUN.match(text, match.end(1)):
                    results.append(self._result(start, match.end(1), score, why))
        return results

    def _repeated(self, text: str, found: list, nlp_artifacts, english) -> list:
        """Every other occurrence of a word of a name found in this text ("directed by Joakim
        Westgård and starring Westgård"): a name stays a name through the document. A name
        found on strong evidence (an introduction, a title, a relation: `STRONG_EVIDENCE`) is
        the same name in any case ("did you call him hubert? my name is hubert"), unless it is
        an English word."""
        words: set[str] = set()
        strong = {
            word.lower()
            for r in found
            if r.score >= STRONG_EVIDENCE
            for word in _TOKEN.findall(text[r.start : r.end])
            if len(word) > 2 and not is_english(word.lower(), english)
        }
        spans = [(r.start, r.end) for r in found if r.score >= 0.5]
        spans += [
            (entity.start_char, entity.end_char)
            for entity in getattr(nlp_artifacts, "entities", None) or ()
            if entity.label_ == "PERSON"
        ]
        for start, end in spans:
            for word in _TOKEN.findall(text[start:end]):
                word = _POSSESSIVE.sub("", word).rstrip(".")
                if (
                    len(word) > 2
                    and word[0].isupper()
                    and (
                        not is_english(word, english)
                        or _listed_anywhere(word, frozenset(), frozenset())
                    )
                ):
                    words.add(word)
        named = Spans(spans)
        results = []
        for match in _TOKEN.finditer(text) if words or strong else ():
            word = _POSSESSIVE.sub("", match.group()).rstrip(".")
            start = match.start()
            end = start + len(word)
            if (word in words or word.lower() in strong) and not named.contains(start, end):
                results.append(self._result(start, end, 0.6, "name repeated"))
        # Names listed together ("Morrison, Rogers and Torres"): one found, all are names.
        for match in _COORDINATED.finditer(text):
            members = list(re.finditer(r"[A-Z][^\W\d_]+", match.group()))
            spots = [(match.start() + m.start(), match.start() + m.end()) for m in members]
            if any(
                is_english(m.group(), english)
                and not _listed_anywhere(m.group(), frozenset(), frozenset())
                for m in members
            ):
                continue
            if any(named.contains(a, b) for a, b in spots):
                results += [self._result(a, b, 0.5, "listed with a name") for a, b in spots]
        return results
