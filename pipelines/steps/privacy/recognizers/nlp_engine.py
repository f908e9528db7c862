"""One NLP engine for both language packs: spaCy for English, a character tokenizer for Chinese.

English runs the installed spaCy package with only what NER needs (the tagger, parser,
attribute ruler and lemmatizer are excluded: about twice as fast); Presidio's context words are
matched against lower-cased tokens instead of lemmas. Chinese has no spaCy model on the
registry: a blank `zh` pipeline tokenizes by character for Presidio's context matching, and the
Chinese recognizers segment with jieba themselves.
"""

import contextlib
import re
from collections.abc import Iterator

import spacy
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, SpacyNlpEngine
from spacy.tokens import Doc, Span

from pipelines.steps.privacy.recognizers.base import check_deadline
from pipelines.steps.privacy.recognizers.en_names import english_lexicon, name_lexicon

# en_core_web_sm's NER has its own embedding layer: the shared tok2vec only feeds the tagger
# and parser.
EXCLUDED_PIPES = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


class PackNlpEngine(SpacyNlpEngine):
    """spaCy NER for `en`, character tokens for `zh`."""

    def __init__(self, spacy_model: str) -> None:
        super().__init__(models=[{"lang_code": "en", "model_name": spacy_model}])
        self.spacy_model = spacy_model
        self.model_words: frozenset[str] = frozenset()
        """Lower-cased words of the English model's vocabulary as loaded (a word-rarity test
        for the name rules: `en_person`)."""
        self.english_words: frozenset[str] = frozenset()
        """Ordinary English words (`en_names.english_lexicon`): the name rules' test of
        whether a capitalized word is a word or a name."""

    def load(self) -> None:
        self.nlp = {
            "en": spacy.load(self.spacy_model, exclude=EXCLUDED_PIPES),
            "zh": spacy.blank("zh"),
        }
        # Taken before any text is read: spaCy adds every token it sees to the string store.
        self.model_words = frozenset(
            word.lower() for word in self.nlp["en"].vocab.strings if word.isalpha()
        )
        self.english_words = english_lexicon(self.spacy_model)
        name_lexicon()  # loaded once here: every forked worker inherits it
        # The model's other labels (CARDINAL, MONEY, FAC, ...) are kept under their own names,
        # as Presidio keeps an unmapped label, but mapped to themselves: Presidio logs a
        # warning for each unmapped entity it meets, about three lines per record
        # in a drop step's stderr (the Dagster UI's compute log).
        mapping = self.ner_model_configuration.model_to_presidio_entity_mapping
        for label in (
            self.nlp["en"].get_pipe("ner").labels if self.nlp["en"].has_pipe("ner") else ()
        ):
            mapping.setdefault(label, label)

    def get_supported_languages(self) -> list[str]:
        return ["en", "zh"]

    def memory_zone(self, language: str) -> contextlib.AbstractContextManager:
        """spaCy's memory zone of the language's pipeline: the strings and lexemes of the texts
        read inside it are freed when it ends, so a scan's memory does not grow with every new
        word of a drop (spaCy otherwise keeps each one for the life of the process; measured
        here, about 0.4 KB a text on the bundled corpus). Docs and spans read inside it must
        not be used after it: callers keep only offsets, labels and scores."""
        return self.nlp[language].memory_zone()

    def tokens_only(self, text: str, language: str) -> NlpArtifacts:
        """Artifacts from the tokenizer alone (no NER), for texts NER has nothing to find in."""
        return self._doc_to_nlp_artifact(self.nlp[language].make_doc(text), language)

    def process_texts(
        self, texts: list[str], language: str, *, batch_size: int
    ) -> Iterator[NlpArtifacts]:
        """Artifacts per text, NER included: spaCy reads every sentence of every text."""
        for doc in self.nlp[language].pipe(texts, batch_size=batch_size):
            yield self._doc_to_nlp_artifact(doc, language)

    def process_long(self, text: str, language: str) -> NlpArtifacts:
        """Artifacts of one long text, NER read chunk by chunk (`chunks`), the running scan's
        deadline checked before each chunk (`ScanTimeout` past it: a long text costs at most
        its budget and one chunk).

        Tokens come from the tokenizer over the whole text; an entity is kept from the chunk
        whose own part it starts in (neighbouring chunks overlap, so one across a cut is read
        whole, and found once), its offsets mapped back onto the whole text.
        """
        nlp = self.nlp[language]
        doc = nlp.make_doc(text)
        entities: list[Span] = []
        for start, end, own_start, own_end in chunks(text):
            check_deadline()
            for entity in nlp(text[start:end]).ents:
                first, last = start + entity.start_char, start + entity.end_char
                if not own_start <= first < own_end:
                    continue
                if entities and first < entities[-1].end_char:
                    continue  # the previous chunk's entity reaches over this one
                span = doc.char_span(first, last, label=entity.label_, alignment_mode="expand")
                if span is not None:
                    entities.append(span)
        return self._doc_to_nlp_artifact(doc, language, entities=entities)

    def _doc_to_nlp_artifact(
        self, doc: Doc, language: str, *, entities: list[Span] | None = None
    ) -> NlpArtifacts:
        tagged = list(doc.ents) if entities is None else entities
        scores = [self.ner_model_configuration.default_score] * len(tagged)
        tagged, scores = self._get_updated_entities(tagged, scores)
        return LazyNlpArtifacts(
            entities=tagged, tokens=doc, nlp_engine=self, language=language, scores=scores
        )


CHUNK = 2_000
"""Characters of text one spaCy call reads in a long text (`PackNlpEngine.process_long`)."""
CHUNK_MARGIN = 150
"""Characters each chunk reads beyond its own part on either side (whole words)."""
_SENTENCE_END = re.compile(r"[.!?。！？]['\")\]]*\s+|\n\s*")


def chunks(text: str, size: int = CHUNK) -> list[tuple[int, int, int, int]]:
    """`(start, end, own start, own end)` of the chunks NER reads a long text in.

    Own parts tile the text; each is cut after a sentence end where one lies in its last
    third, else after a space, else anywhere (a run without spaces). A chunk reads its own
    part and `CHUNK_MARGIN` characters on either side, cut at spaces where there are any.
    """
    cuts = [0]
    while len(text) - cuts[-1] > size:
        start, target = cuts[-1], cuts[-1] + size - 2 * CHUNK_MARGIN
        low = start + (size - 2 * CHUNK_MARGIN) * 2 // 3
        ends = [m.end() for m in _SENTENCE_END.finditer(text, low, target)]
        if ends:
            cut = ends[-1]
        else:
            space = text.rfind(" ", low, target)
            cut = space + 1 if space > low else target
        cuts.append(cut)
    cuts.append(len(text))
    out = []
    for own_start, own_end in zip(cuts, cuts[1:], strict=False):
        start = max(0, own_start - CHUNK_MARGIN)
        if start:
            space = text.find(" ", start, own_start)
            start = space + 1 if space != -1 else start
        end = min(len(text), own_end + CHUNK_MARGIN)
        if end < len(text):
            space = text.rfind(" ", own_end, end)
            end = space if space != -1 else end
        out.append((start, end, own_start, own_end))
    return out


class LazyNlpArtifacts(NlpArtifacts):
    """Presidio's NLP artifacts, with the token offsets, words and keywords built on first use.

    Only Presidio's context enhancer reads them, and only for results of Presidio's own
    recognizers that have not weighed their context (ours do it themselves): most texts never
    need them, and building them per token costs about as much as all the pattern recognizers.
    Presidio's version reads lemmas (absent: no lemmatizer) and derives keywords from them;
    these derive them from lower-cased tokens.
    """

    def __init__(
        self,
        *,
        entities: list,
        tokens: Doc,
        nlp_engine: NlpEngine,
        language: str,
        scores: list[float] | None = None,
    ) -> None:
        # NlpArtifacts.__init__ builds every list at once: set what it sets, lists excepted.
        self.entities = entities
        self.tokens = tokens
        self.nlp_engine = nlp_engine
        self.scores = scores if scores else [0.85] * len(entities)
        self._language = language
        self._words: tuple[list[int], list[str], list[str]] | None = None

    def _lists(self) -> tuple[list[int], list[str], list[str]]:
        if self._words is None:
            indices, words = [], []
            for token in self.tokens:
                indices.append(token.idx)
                words.append(token.lower_)
            keywords = self.set_keywords(self.nlp_engine, words, self._language)
            self._words = (indices, words, keywords)
        return self._words

    @property
    def tokens_indices(self) -> list[int]:
        return self._lists()[0]

    @property
    def lemmas(self) -> list[str]:
        return self._lists()[1]

    @property
    def keywords(self) -> list[str]:
        return self._lists()[2]
