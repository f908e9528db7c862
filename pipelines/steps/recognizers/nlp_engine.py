"""One NLP engine for both language packs: spaCy for English, a character tokenizer for Chinese.

English runs the installed spaCy package with only what NER needs (the tagger, parser,
attribute ruler and lemmatizer are excluded: about twice as fast); Presidio's context words are
matched against lower-cased tokens instead of lemmas. Chinese has no spaCy model on the
registry: a blank `zh` pipeline tokenizes by character for Presidio's context matching, and the
Chinese recognizers segment with jieba themselves.
"""

from collections.abc import Iterator

import spacy
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from spacy.tokens import Doc

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

    def load(self) -> None:
        self.nlp = {
            "en": spacy.load(self.spacy_model, exclude=EXCLUDED_PIPES),
            "zh": spacy.blank("zh"),
        }
        # Taken before any text is read: spaCy adds every token it sees to the string store.
        self.model_words = frozenset(
            word.lower() for word in self.nlp["en"].vocab.strings if word.isalpha()
        )

    def get_supported_languages(self) -> list[str]:
        return ["en", "zh"]

    def tokens_only(self, text: str, language: str) -> NlpArtifacts:
        """Artifacts from the tokenizer alone (no NER), for texts NER has nothing to find in."""
        return self._doc_to_nlp_artifact(self.nlp[language].make_doc(text), language)

    def entities_batch(
        self, texts: list[str], language: str, *, batch_size: int
    ) -> Iterator[NlpArtifacts]:
        """NER entities per text, without the token lists that context matching needs.

        For the scrubber's NER-only re-reads (`pii._ner_texts`): building keywords per token
        costs as much as NER itself on short texts.
        """
        for doc in self.nlp[language].pipe(texts, batch_size=batch_size):
            entities, scores = self._get_updated_entities(
                self._get_entities(doc), self._get_scores_for_entities(doc)
            )
            yield NlpArtifacts(
                entities=entities,
                tokens=doc,
                tokens_indices=[],
                lemmas=[],
                nlp_engine=self,
                language=language,
                scores=scores,
            )

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        # Presidio's version reads lemmas (absent: no lemmatizer) and derives keywords from
        # them; ours derives them once, from lower-cased tokens.
        entities, scores = self._get_updated_entities(
            self._get_entities(doc), self._get_scores_for_entities(doc)
        )
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=scores,
        )
