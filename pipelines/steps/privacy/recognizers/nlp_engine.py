"""One NLP engine for both language packs: spaCy for English, a character tokenizer for Chinese.

English runs the installed spaCy package with only what NER needs (the tagger, parser,
attribute ruler and lemmatizer are excluded: about twice as fast); Presidio's context words are
matched against lower-cased tokens instead of lemmas. Chinese has no spaCy model on the
registry: a blank `zh` pipeline tokenizes by character for Presidio's context matching, and the
Chinese recognizers segment with jieba themselves.
"""

from collections.abc import Iterator

import spacy
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, SpacyNlpEngine
from spacy.tokens import Doc, Span

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

    def get_supported_languages(self) -> list[str]:
        return ["en", "zh"]

    def tokens_only(self, text: str, language: str) -> NlpArtifacts:
        """Artifacts from the tokenizer alone (no NER), for texts NER has nothing to find in."""
        return self._doc_to_nlp_artifact(self.nlp[language].make_doc(text), language)

    def process_texts(
        self, texts: list[str], language: str, *, batch_size: int
    ) -> Iterator[NlpArtifacts]:
        """Artifacts per text, NER included: spaCy reads every sentence of every text."""
        for doc in self.nlp[language].pipe(texts, batch_size=batch_size):
            yield self._doc_to_nlp_artifact(doc, language)

    def _doc_to_nlp_artifact(
        self, doc: Doc, language: str, *, entities: list[Span] | None = None
    ) -> NlpArtifacts:
        tagged = list(doc.ents) if entities is None else entities
        scores = [self.ner_model_configuration.default_score] * len(tagged)
        tagged, scores = self._get_updated_entities(tagged, scores)
        return LazyNlpArtifacts(
            entities=tagged, tokens=doc, nlp_engine=self, language=language, scores=scores
        )


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
