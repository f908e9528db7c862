"""The `sovtune` command line: run the demo pipeline, scan a corpus for PII."""

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from pipelines.steps.offline import enforce_offline

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DROP = "default"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Sovereign Tune: governed, differentially private fine-tuning, on premise.",
)


def _fail(message: str) -> None:
    typer.echo(f"sovtune: error: {message}", err=True)
    raise typer.Exit(code=2)


def _profile(profile: str):
    """The named profile with the environment applied, or exit 2 naming what to fix."""
    from pipelines.steps.config import ConfigError, load_config, with_environment

    try:
        return with_environment(load_config(profile))
    except ConfigError as exc:
        _fail(str(exc))


DAGSTER_HOME_TEMPLATE = REPO_ROOT / "dagster_home" / "dagster.yaml"


def dagster_home(cfg) -> Path:
    """The profile's own Dagster home: `dagster_home/` of the repository for the `default`
    profile on its data root `var/` of the repository, `<data_root>/dagster_home` for any other
    (made from the repository's dagster.yaml, telemetry off), so that no two profiles or data
    roots share run history, drops or sensor cursors."""
    root = Path(cfg.data_root).resolve()
    if cfg.profile == "default" and root == (REPO_ROOT / "var").resolve():
        return DAGSTER_HOME_TEMPLATE.parent
    home = root / "dagster_home"
    if not (home / "dagster.yaml").is_file():
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(DAGSTER_HOME_TEMPLATE.read_text(encoding="utf-8"))
    return home


def _use_dagster_home(cfg) -> None:
    """DAGSTER_HOME as set by the caller (an operator's instance), else the profile's own."""
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(dagster_home(cfg))


PROFILE_HELP = "quick, default, or a profile YAML path."


@app.command()
def demo(
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the pipeline on the bundled synthetic corpus, written into an empty landing zone.

    The corpus is the data drop `default`; every drop runs through screening, then they are
    joined, trained on, audited, registered and reported (as `sovtune run`).
    """
    _pipeline(profile, as_json, generate=True)


@app.command()
def run(
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the pipeline on what is in the profile's landing zone, end to end.

    Every data drop goes through ingestion, scrubbing and screening; then they are joined,
    trained on, audited, registered and reported.

    Each top-level file or folder of <data_root>/landing is one drop (a folder holding a
    LLaMA-Factory dataset_info.json is read through it). Exit status 0 only when every asset
    materialized and every check passed.
    """
    _pipeline(profile, as_json, generate=False)


def _pipeline(profile: str, as_json: bool, *, generate: bool) -> None:
    enforce_offline()
    cfg = _profile(profile)
    landing = Path(cfg.data_root).resolve() / "landing"
    if not generate and not (landing.is_dir() and any(landing.iterdir())):
        _fail(
            f"the landing zone {landing} is empty: put your data there (each file or folder is "
            "one data drop), or run `sovtune demo` for the bundled synthetic corpus"
        )
    _use_dagster_home(cfg)
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        summary = _run_pipeline(cfg, generate=generate)
    summary["command"] = "demo" if generate else "run"
    summary["seconds"] = round(time.monotonic() - started, 1)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        typer.echo(_format_summary(summary))
    if not summary["success"]:
        raise typer.Exit(code=1)


def _run_pipeline(cfg, *, generate: bool) -> dict:
    from dagster import DagsterInstance

    from pipelines.definitions import build_definitions
    from pipelines.drops import register_drops
    from pipelines.jobs import DROP_JOB, MAIN_JOB, snapshot_tags
    from pipelines.steps.synthetic.corpus import generate_corpus, write_ground_truth

    root = Path(cfg.data_root).resolve()
    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    generated = False
    if generate and not any(landing.iterdir()):
        # the bundled corpus is one data drop, `default`
        truth = generate_corpus(
            landing / DEMO_DROP, records=cfg.corpus.records, seed=cfg.corpus.seed
        )
        write_ground_truth(truth, root / "raw" / "ground_truth.json")
        generated = True
    defs = build_definitions(cfg)
    instance = DagsterInstance.get()
    drops = register_drops(instance, landing)
    # every run is tagged with the data snapshot: each drop's key and sha256, hashed together
    tags = snapshot_tags(defs.resources["storage"])
    drop_job = defs.resolve_job_def(DROP_JOB)
    drop_results = [
        drop_job.execute_in_process(
            instance=instance,
            partition_key=drop.key,
            raise_on_error=False,
            tags={**tags, "sovtune/drop": drop.key, "sovtune/drop_sha256": drop.sha256},
        )
        for drop in drops
    ]
    result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
        instance=instance, raise_on_error=False, tags=tags
    )
    return _summarize(drop_results, result, cfg, generated=generated)


def _summarize(drop_results: list, result, cfg, *, generated: bool) -> dict:
    from dagster import AssetCheckSeverity

    from pipelines.steps.integrity.counts import record_counts

    def value(name: str) -> dict | None:
        try:
            return result.output_for_node(name)
        except Exception:  # noqa: BLE001 — a skipped or failed asset has no output
            return None

    corpus = value("training_corpus") or {}
    raw, scrubbed, curated = (corpus.get(zone) for zone in ("raw", "scrubbed", "curated"))
    adapter, audit = value("dp_lora_adapter"), value("privacy_audit")
    registered, report = value("registered_model"), value("compliance_report")
    checks = [
        {
            "asset": e.asset_check_evaluation_data.asset_key.to_user_string(),
            "check": e.asset_check_evaluation_data.check_name,
            "passed": e.asset_check_evaluation_data.passed,
            # a WARN-severity failure (training.utility.action warn) warns, it does not fail
            "warned": not e.asset_check_evaluation_data.passed
            and e.asset_check_evaluation_data.severity == AssetCheckSeverity.WARN,
            "drop": e.asset_check_evaluation_data.partition,
        }
        for run in [*drop_results, result]
        for e in run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    runs_ok = all(r.success for r in [*drop_results, result])
    return {
        "success": runs_ok and all(c["passed"] or c["warned"] for c in checks) and bool(report),
        "profile": cfg.profile,
        "dagster_run_id": result.run_id,
        "drop_run_ids": [r.run_id for r in drop_results],
        "drops": [d["drop"] for d in corpus.get("drops", [])],
        "snapshot_sha256": corpus.get("snapshot_sha256"),
        "corpus_generated": generated,
        "records_in": raw and raw["records_in"],
        "accepted": raw and raw["accepted"],
        "quarantined": raw and raw["quarantined"],
        "quarantined_by_reason": raw and raw["quarantine_by_reason"],
        "pii_by_entity_type": scrubbed and scrubbed["entity_counts"],
        "filtered": curated and curated["filtered"],
        "filtered_by_reason": curated and curated["filtered_by_reason"],
        "curated": curated and curated["kept"],
        # one vocabulary, reconciling to records in (pipelines/steps/integrity/counts.py)
        "counts": raw and curated and record_counts(raw, curated),
        "epsilon": adapter and round(adapter["epsilon"], 4),
        "delta": adapter and adapter["delta"],
        "audit_passed": audit and audit["passed"],
        "max_exposure_bits": audit and audit["max_exposure_bits"],
        "model_name": registered and registered["name"],
        "model_version": registered and registered["version"],
        "report": report and report["html"],
        "checks_failed": [
            f"{c['asset']}:{c['check']}" + (f"[{c['drop']}]" if c["drop"] else "")
            for c in checks
            if not c["passed"] and not c["warned"]
        ],
        "checks_warned": [f"{c['asset']}:{c['check']}" for c in checks if c["warned"]],
        "checks_run": len(checks),
    }


def _format_summary(s: dict) -> str:
    def table(counts: dict | None) -> str:
        if not counts:
            return "none"
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))

    c = s.get("counts") or {}
    steward = c.get("steward", {})
    lines = [
        f"Sovereign Tune {s.get('command', 'demo')} ({s['profile']} profile): "
        + ("SUCCESS" if s["success"] else "FAILED"),
        f"  Dagster run           {s['dagster_run_id']}",
        f"  data drops            {len(s['drop_run_ids'])} run, joined: "
        f"{', '.join(s['drops']) or 'none'} (snapshot {(s['snapshot_sha256'] or 'n/a')[:16]})",
        f"  records in            {s['records_in']}",
        f"  ingestion quarantine  {s['quarantined']}  ({table(s['quarantined_by_reason'])})",
        f"  PII found by type     {table(s['pii_by_entity_type'])}",
        f"  filtered              {s['filtered']}  ({table(s['filtered_by_reason'])})",
        f"  screening quarantine  {c.get('screening_quarantine')}  (steward decisions: "
        f"{steward.get('approved')} approved, {steward.get('rejected')} rejected, "
        f"{steward.get('awaiting_review')} awaiting review)",
        f"  trained on            {s['curated']} records  (records in = ingestion quarantine "
        "+ filtered + trained on)",
        *(
            [
                f"  canaries planted      {c['canaries_planted']} records of the audit's own "
                "(not records in)"
            ]
            if c.get("canaries_planted")
            else []
        ),
        f"  epsilon spent         {s['epsilon']}  (delta {s['delta']})",
        "  audit                 "
        + ("passed" if s["audit_passed"] else "FAILED" if s["audit_passed"] is False else "n/a")
        + f"  (max canary exposure {s['max_exposure_bits']} bits)",
        f"  MLflow model          {s['model_name']} version {s['model_version']}",
        f"  report                {s['report']}",
        f"  checks                {s['checks_run']} run, failed: {s['checks_failed'] or 'none'}"
        + (f", warned: {s['checks_warned']}" if s.get("checks_warned") else ""),
        f"  took                  {s['seconds']} s",
    ]
    return "\n".join(lines)


@app.command()
def scan(
    input_path: Annotated[
        Path | None, typer.Argument(metavar="INPUT", help="JSONL, CSV or Parquet.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the findings (JSONL); - for stdout."),
    ] = None,
    profile: Annotated[str, typer.Option(help="Profile whose PII settings apply.")] = "default",
    preview: Annotated[
        bool,
        typer.Option(
            "--preview",
            help="Also print each finding in its context, every finding in it shown as its "
            "type, never the value (to stderr: this terminal, not the output file).",
        ),
    ] = False,
    eval_path: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            metavar="GOLD.jsonl",
            help="Score the detector against a labelled file: precision, recall and F2 per "
            "entity type (shape: see pipelines/steps/privacy/pii_eval.py).",
        ),
    ] = None,
) -> None:
    """Dry run of the PII detector: one line of findings per record, changing nothing.

    With --eval GOLD.jsonl, scores the same detector against gold findings instead. With
    --out -, the findings go to stdout and the summary to stderr.
    """
    enforce_offline()
    if eval_path is not None:
        _scan_eval(eval_path, profile)
        return
    if input_path is None or out is None:
        _fail("give INPUT and --out, or --eval GOLD.jsonl")
    from dataclasses import replace

    from pipelines.steps.config import ConfigError, load_config
    from pipelines.steps.ingest.landing import (
        SUPPORTED_SUFFIXES,
        RecordError,
        iter_rows,
        normalize_row,
    )
    from pipelines.steps.ingest.language import language_verdict
    from pipelines.steps.privacy import pii
    from pipelines.steps.records import Record

    if not input_path.is_file():
        _fail(f"INPUT {input_path} is not a file")
    if input_path.suffix.lower() not in SUPPORTED_SUFFIXES:
        _fail(f"INPUT {input_path}: unsupported type (use {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        cfg = load_config(profile)
        analyzer = pii.build_analyzer(cfg.pii)
    except (ConfigError, pii.PIIEngineError) as exc:
        _fail(str(exc))
    lines: list[dict] = []
    pending: list[tuple[int, Record]] = []
    for line_no, row in iter_rows(input_path, cfg.ingest.limits):
        fallback_id = f"{input_path.name}:{line_no}"
        try:
            if isinstance(row, RecordError):
                raise row
            record = normalize_row(row, source_file=input_path.name, source_line=line_no)
        except RecordError as err:
            lines.append({"id": fallback_id, "findings": [], "error": err.reason})
            continue
        record_id = record.id if "id" in row else fallback_id
        language, ok = language_verdict(record.text, list(cfg.ingest.languages))
        if not ok:
            # Quarantined by ingest (no pack reads its script); its pattern findings are
            # still reported (issue #15.3).
            try:
                found = [
                    _finding_line(m.field, f)
                    for m in record.messages
                    for f in pii.scan_refused(analyzer, m.content, cfg.pii)
                ]
            except pii.ScanTimeout:
                lines.append({"id": record_id, "findings": [], "error": pii.SCAN_TIMEOUT})
                continue
            lines.append(
                {
                    "id": record_id,
                    "findings": found,
                    "error": "unsupported_language",
                    "language": language,
                }
            )
            continue
        # Scanned in batches: NER pipes a batch at once, on both cores (issue #15.4).
        lines.append({"id": record_id, "findings": []})
        pending.append((len(lines) - 1, replace(record, language=language)))
        if len(pending) >= SCAN_BATCH:
            _scan_batch(pending, lines, analyzer, cfg.pii)
    _scan_batch(pending, lines, analyzer, cfg.pii)
    _write_jsonl(lines, out)
    total = sum(len(x["findings"]) for x in lines)
    late = sum(x.get("error") == pii.SCAN_TIMEOUT for x in lines)
    over = f" ({late} over pii.scan_budget_seconds: scan_timeout)" if late else ""
    typer.echo(
        f"scanned {len(lines)} records from {input_path}: {total} findings{over} -> {out}",
        err=_to_stdout(out),
    )
    if preview:
        for line in _previews(input_path, lines, cfg.ingest.limits):
            typer.echo(line, err=True)


SCAN_BATCH = 1024
"""Records `sovtune scan` hands to the detector at once (memory stays flat with the file)."""


def _scan_batch(pending: list, lines: list[dict], analyzer, cfg) -> None:
    """Fill the findings of the pending `(line index, record)` pairs, then empty the list."""
    from pipelines.steps.privacy import pii

    records = [record for _, record in pending]
    late: set[str] = set()
    for (index, record), (_, findings) in zip(
        pending, pii.scan_records(records, analyzer, cfg, timed_out=late), strict=True
    ):
        lines[index]["findings"] = [_finding_line(f.field, f) for f in findings]
        if record.id in late:  # over pii.scan_budget_seconds: refused, not clean (issue #16.3)
            lines[index]["error"] = pii.SCAN_TIMEOUT
    pending.clear()


def _to_stdout(out: Path) -> bool:
    return str(out) == "-"


def _write_jsonl(lines: Iterable[dict], out: Path) -> None:
    """JSON lines into `out` (written atomically), or onto stdout when `out` is `-`; written
    line by line as `lines` yields them (the text of a large corpus is never held whole)."""
    from pipelines.steps.storage import atomic_write

    if _to_stdout(out):
        for x in lines:
            typer.echo(json.dumps(x, ensure_ascii=False))
        return

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as handle:
            for x in lines:
                handle.write(json.dumps(x, ensure_ascii=False) + "\n")

    atomic_write(out, write)


PREVIEW_CHARS = 40
"""Characters of context on either side of a finding in `sovtune scan --preview`."""


def _previews(input_path: Path, lines: list[dict], limits) -> list[str]:
    """One line per finding: record id, field, type and its context with every finding in the
    window replaced by `[TYPE]` (the file is read again; `lines` holds one entry per slot)."""
    from pipelines.steps.ingest.landing import RecordError, iter_rows, normalize_row

    out = []
    for (line_no, row), line in zip(iter_rows(input_path, limits), lines, strict=True):
        if not line["findings"] or isinstance(row, RecordError):
            continue
        try:
            record = normalize_row(row, source_file=input_path.name, source_line=line_no)
        except RecordError:
            continue
        contents = {m.field: m.content for m in record.messages}
        for finding in line["findings"]:
            text = contents.get(finding["field"], "")
            same_field = [f for f in line["findings"] if f["field"] == finding["field"]]
            out.append(
                f"{line['id']} {finding['field']} {finding['entity_type']}: "
                + redacted_context(text, finding["start"], finding["end"], same_field)
            )
    return out


def redacted_context(text: str, start: int, end: int, findings: list[dict]) -> str:
    """`text` around `[start, end)`, every finding overlapping the window shown as `[TYPE]`."""
    lo, hi = max(0, start - PREVIEW_CHARS), min(len(text), end + PREVIEW_CHARS)
    spans = sorted(
        (max(f["start"], lo), min(f["end"], hi), f["entity_type"])
        for f in findings
        if f["start"] < hi and f["end"] > lo
    )
    parts, at = [], lo
    for s, e, kind in spans:
        if s < at:  # overlapping findings: the first one's mark covers both
            at = max(at, e)
            continue
        parts += [text[at:s], f"[{kind}]"]
        at = e
    parts.append(text[at:hi])
    body = " ".join("".join(parts).split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


def _finding_line(field: str, finding) -> dict:
    """One finding of `sovtune scan`'s output: where and what, never the value."""
    return {
        "field": field,
        "start": finding.start,
        "end": finding.end,
        "entity_type": finding.entity_type,
        "score": round(finding.score, 4),
    }


@app.command()
def screen(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL, CSV or Parquet.")],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the decisions (JSONL); - for stdout.")
    ],
    profile: Annotated[str, typer.Option(help="Profile whose curation settings apply.")] = (
        "default"
    ),
    onion: Annotated[
        bool, typer.Option("--onion", help="Also score flagged records with ONION (base model).")
    ] = False,
) -> None:
    """Integrity screens on a corpus file: one line per record with its decision and reasons.

    Rows that cannot be read are quarantined with screen `ingest` (never passed unchecked).
    With --onion, the profile's base model (prepared in its model store) scores the records the
    backdoor or injection screens flagged. A profile with `execution.engine: ray` runs each
    screen as a task on its Ray cluster (the same decisions as here).
    """
    enforce_offline()
    from pipelines.steps.ingest.landing import (
        SUPPORTED_SUFFIXES,
        RecordError,
        iter_rows,
        normalize_row,
    )
    from pipelines.steps.integrity.curate import curate_records, iter_decision_lines
    from pipelines.steps.integrity.packed import PackedRecords

    if not input_path.is_file():
        _fail(f"INPUT {input_path} is not a file")
    if input_path.suffix.lower() not in SUPPORTED_SUFFIXES:
        _fail(f"INPUT {input_path}: unsupported type (use {', '.join(SUPPORTED_SUFFIXES)})")
    cfg = _profile(profile)
    # Under `execution.engine: ray`, each screen a task on the cluster; a failed one exits 2.
    run_screens, screen_errors = (
        _ray_screens(cfg.execution) if cfg.execution.engine == "ray" else (None, ())
    )
    # Packed, not a list of objects: about the size of their text, and shared with the second
    # screening process instead of copied into it (#21).
    records, unreadable, seen = PackedRecords(), {}, set()
    for line_no, row in iter_rows(input_path, cfg.ingest.limits):
        fallback_id = f"{input_path.name}:{line_no}"
        try:
            if isinstance(row, RecordError):
                raise row
            record = normalize_row(row, source_file=input_path.name, source_line=line_no)
            if record.id in seen:
                raise RecordError("duplicate_id", "id already used by an earlier record")
        except RecordError as err:
            unreadable[len(records) + len(unreadable)] = {
                "id": fallback_id,
                "decision": "quarantine",
                "reasons": [{"screen": "ingest", "code": err.reason, "score": 1.0, "detail": ""}],
            }
            continue
        seen.add(record.id)
        records.append(record)
    from pipelines.steps.integrity.screens.backdoor import lazy_disruption, lazy_perplexity

    @functools.cache
    def load() -> tuple:
        """The base model, prepared and loaded only if a screen asks for it (ONION on a flagged
        record, or a sibling phrase to confirm: `curation.inserted_phrase_lm_check`); torch is
        imported then too, not before (about 0.5 GB and seconds of CPU)."""
        from pipelines.steps.training.modelstore import ModelStoreError, screening_model

        try:
            return screening_model(cfg.model, Path(cfg.data_root).resolve() / "models")()
        except ModelStoreError as exc:
            _fail(str(exc))
            raise  # unreachable: _fail exits

    perplexity = lazy_perplexity(load) if onion else None
    disruption = lazy_disruption(load) if cfg.curation.inserted_phrase_lm_check else None
    del seen
    try:
        result = curate_records(
            records,
            cfg.curation,
            perplexity=perplexity,
            disruption=disruption,
            run_screens=run_screens,
        )
    except screen_errors as exc:
        _fail(str(exc))
    total = len(records) + len(unreadable)
    del records  # the result keeps a view of the records it kept
    counts = dict.fromkeys(("keep", "drop", "quarantine"), 0)

    def lines() -> Iterator[dict]:
        # Written as they come: a dict per record of a 1M-record corpus is never held (#21).
        screened = iter_decision_lines(result)
        for i in range(total):
            line = unreadable[i] if i in unreadable else next(screened)
            counts[line["decision"]] += 1
            yield line

    _write_jsonl(lines(), out)
    typer.echo(
        f"screened {total} records from {input_path}: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
        + f" -> {out}",
        err=_to_stdout(out),
    )


def _ray_screens(execution) -> tuple[Callable, tuple[type[Exception], ...]]:
    """The Ray screen runner of the profile's `execution` section, connected, and the error a
    screen that fails on the cluster raises; or exit 2 naming `execution.address` when the
    cluster cannot be reached."""
    from pipelines.steps.execution.ray_cluster import RayUnavailable, connect
    from pipelines.steps.execution.ray_screens import RayScreenError, ray_screen_runner

    try:
        connect(execution)
    except RayUnavailable as exc:
        _fail(str(exc))
    return ray_screen_runner(execution), (RayScreenError,)


def _scan_eval(gold_path: Path, profile: str) -> None:
    """Print precision, recall and F2 per entity type of the pipeline's detector on a gold file."""
    from pipelines.steps.config import ConfigError, load_config
    from pipelines.steps.ingest.landing import RecordError, normalize_row
    from pipelines.steps.ingest.language import language_verdict
    from pipelines.steps.privacy import pii, pii_eval

    if not gold_path.is_file():
        _fail(f"--eval {gold_path} is not a file")
    try:
        cfg = load_config(profile)
        analyzer = pii.build_analyzer(cfg.pii)
        rows = pii_eval.read_gold(gold_path)
    except (ConfigError, pii.PIIEngineError, ValueError) as exc:
        _fail(str(exc))
    gold, predicted = [], []
    for line_no, row in enumerate(rows, 1):
        try:
            record = normalize_row(row, source_file=gold_path.name, source_line=line_no)
        except RecordError as err:
            _fail(f"{gold_path}:{line_no}: {err.reason}")
        language, ok = language_verdict(record.text, list(cfg.ingest.languages))
        language = row.get("language") or (language if ok else "en")
        found = []
        for index, message in enumerate(record.messages):
            field = message.field or ("text" if "text" in row else f"messages[{index}].content")
            found += [
                (field, f.start, f.end, f.entity_type)
                for f in pii.scan_text(analyzer, message.content, cfg.pii, language=language)
            ]
        gold.append(pii_eval.gold_spans(row))
        predicted.append(found)
    typer.echo(pii_eval.format_table({"sovtune": pii_eval.score(gold, predicted)}))


@app.command()
def report(
    model: Annotated[str, typer.Argument(metavar="MODEL[:VERSION]", help="Registered model.")],
    profile: Annotated[str, typer.Option(help="Profile whose registry to read.")] = "default",
) -> None:
    """Print where the compliance report of a model version is (latest version by default).

    A local registry (SQLite) is read directly, without loading MLflow or any model.
    """
    enforce_offline()
    from pipelines.steps.release import registry_store

    cfg = _profile(profile)
    name, _, version = model.partition(":")
    uri = cfg.registry.tracking_uri
    db = registry_store.sqlite_store(uri) if uri else Path(cfg.data_root) / "mlflow" / "mlflow.db"
    if db is not None:
        try:
            where = registry_store.report_location(
                db.resolve(), name, version or None, data_root=Path(cfg.data_root).resolve()
            )
        except registry_store.RegistryStoreError as exc:
            _fail(str(exc))
    else:  # a tracking server: through MLflow's client
        from pipelines.definitions import build_resources
        from resources.registry import RegistryError

        registry = build_resources(cfg)["registry"].model_copy(update={"model_name": name})
        try:
            where = registry.report_location(version or None)
        except RegistryError as exc:
            _fail(str(exc))
    typer.echo(
        f"{where['model']} version {where['version']} (aliases: {where['aliases'] or 'none'})"
    )
    typer.echo(f"  report (HTML)   {where['report_html'] or 'not written yet'}")
    typer.echo(f"  MLflow artifacts {where['mlflow_artifacts']}")


@app.command()
def plan(
    profile: Annotated[str, typer.Option(help="Profile whose model and training apply.")] = (
        "default"
    ),
    records: Annotated[
        int | None,
        typer.Option(help="Records to plan for (default: the curated corpus of the data root)."),
    ] = None,
    epsilon: Annotated[
        float | None, typer.Option(help="Target epsilon (default: the profile's).")
    ] = None,
    delta: Annotated[float | None, typer.Option(help="Target delta (default: the profile's).")] = (
        None
    ),
    minutes: Annotated[
        float | None,
        typer.Option(help="Minutes of training steps (default: training.plan_minutes)."),
    ] = None,
    per_example_seconds: Annotated[
        float | None,
        typer.Option(
            help="Use this step cost per example instead of measuring it here (e.g. one "
            "measured on the GPU that will train)."
        ),
    ] = None,
    step_overhead_seconds: Annotated[
        float, typer.Option(help="With --per-example-seconds: cost per step beside it.")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Plan a DP run before it spends: step cost, noise, expected gain, a recommendation.

    Measures the step cost, predicts the noise and the share of the non-private gain per
    setting, and recommends one (docs/engineer.md).
    """
    enforce_offline()
    from dataclasses import asdict

    from pydantic import ValidationError

    from pipelines.steps.config import TrainingConfig
    from pipelines.steps.training import plan as planner
    from pipelines.steps.training.modelstore import ModelStoreError, prepare_base_model
    from resources.trainer import default_device

    cfg = _profile(profile)
    overrides = {"target_epsilon": epsilon, "target_delta": delta}
    try:
        training = TrainingConfig.model_validate(
            {**cfg.training.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValidationError as exc:
        _fail(f"--epsilon/--delta: {exc.errors()[0]['msg']}")
    root = Path(cfg.data_root).resolve()
    if records is None:
        records = _curated_count(root / "curated" / "curated_corpus.parquet")
    try:
        model_dir = prepare_base_model(cfg.model, root / "models").path
        if per_example_seconds is None:
            cost = planner.measure_step_cost(model_dir, training, device=default_device())
        else:
            cost = planner.StepCost(step_overhead_seconds, per_example_seconds, "given")
        result = planner.make_plan(
            n_records=records,
            cfg=training,
            minutes=minutes if minutes is not None else training.plan_minutes,
            cost=cost,
            lora_params_per_rank=planner.lora_params_per_rank(
                model_dir, list(training.target_modules), freeze_a=training.lora_freeze_a
            ),
        )
    except (planner.PlanError, ModelStoreError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2, sort_keys=True))
    else:
        typer.echo(planner.format_plan(result))


def _curated_count(path: Path) -> int:
    """Rows of the curated corpus (from the Parquet footer: no record is read)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        _fail(f"no curated corpus at {path}; give --records N or run the pipeline first")
    return pq.ParquetFile(path).metadata.num_rows


vault_app = typer.Typer(no_args_is_help=True, help="The encrypted pseudonym vault (stewards).")
app.add_typer(vault_app, name="vault")


@vault_app.command("keygen")
def vault_keygen() -> None:
    """Print a new vault key to put in the variable named by pii.vault_key_env."""
    from pipelines.steps.privacy.vault import new_key

    typer.echo(new_key())


@vault_app.command("open")
def vault_open(
    entity: Annotated[str, typer.Option(help="Entity type of the surrogate, e.g. PERSON.")],
    surrogate: Annotated[str, typer.Option(help="The surrogate as it appears in the corpus.")],
    profile: Annotated[str, typer.Option(help="Profile whose data root and key apply.")] = (
        "default"
    ),
) -> None:
    """Print the original behind one surrogate, to this terminal only.

    Needs the vault key in the variable named by pii.vault_key_env. The lookup is appended to
    secrets/vault_access.log under the data root (who, when, type, surrogate hash, matches).
    """
    from pipelines.steps.privacy.vault import ACCESS_LOG, VAULT_FILE, Vault, VaultError, log_access

    cfg = _profile(profile)
    secrets_dir = Path(cfg.data_root).resolve() / "secrets"
    try:
        originals = Vault.from_env(secrets_dir / VAULT_FILE, cfg.pii.vault_key_env).lookup(
            entity, surrogate
        )
    except VaultError as exc:  # a failed attempt is logged too (who, what type; no value)
        outcome = getattr(exc, "outcome", "refused")
        log_access(secrets_dir / ACCESS_LOG, entity, surrogate, 0, outcome=outcome)
        _fail(str(exc))
    outcome = "found" if originals else "no_match"
    log_access(secrets_dir / ACCESS_LOG, entity, surrogate, len(originals), outcome=outcome)
    if not originals:
        _fail(f"no {entity} surrogate like that in the vault")
    for original in originals:
        typer.echo(original)


ids_app = typer.Typer(
    no_args_is_help=True, help="Pseudonymous ids, subjects and file names (raw-zone stewards)."
)
app.add_typer(ids_app, name="ids")


@ids_app.command("resolve")
def ids_resolve(
    pseudonym: Annotated[str, typer.Argument(help="e.g. rec-3f2a…, subj-…, file-….jsonl")],
    profile: Annotated[str, typer.Option(help="Profile whose data root and key apply.")] = (
        "default"
    ),
) -> None:
    """Print the original id, subject, source label or file name behind one pseudonym.

    Needs read access to the raw zone (`raw/identifiers.sqlite`) and the pseudonym key; the row
    must verify under that key. The original goes to this terminal only; the attempt is
    appended to secrets/vault_access.log (who, when, kind, pseudonym hash; no value).
    """
    from pipelines.definitions import build_resources
    from pipelines.steps.privacy.identifiers import (
        IDENTIFIER_MAP,
        IdentifierMap,
        IdentifierMapError,
    )
    from pipelines.steps.privacy.vault import ACCESS_LOG, VaultError, log_access

    cfg = _profile(profile)
    root = Path(cfg.data_root).resolve()
    log = root / "secrets" / ACCESS_LOG
    path = root / "raw" / IDENTIFIER_MAP
    if not path.is_file():
        log_access(log, "IDENTIFIER", pseudonym, 0, outcome="no_vault")
        _fail(f"no identifier map at {path}: no drop was ingested under this data root")
    try:
        found = IdentifierMap(path, build_resources(cfg)["pii"].pseudonym_key()).resolve(pseudonym)
    except (IdentifierMapError, VaultError) as exc:
        log_access(log, "IDENTIFIER", pseudonym, 0, outcome="refused")
        _fail(str(exc))
    log_access(
        log,
        "IDENTIFIER",
        pseudonym,
        int(found is not None),
        outcome=("found" if found else "no_match"),
    )
    if found is None:
        _fail(f"no pseudonym {pseudonym!r} under this data root's key")
    typer.echo(f"{found[0]}\t{found[1]}")


@app.command()
def erase(
    subject: Annotated[
        list[str], typer.Option(help="A data subject's key as dropped (repeatable).")
    ] = [],  # noqa: B006 — typer reads the default, never mutates it
    record_id: Annotated[
        list[str], typer.Option("--id", help="A record id as dropped (repeatable).")
    ] = [],  # noqa: B006
    profile: Annotated[str, typer.Option(help="Profile whose data root and key apply.")] = (
        "default"
    ),
    reason: Annotated[
        str, typer.Option(help="Why: data_subject_request, legal_obligation, ...")
    ] = "data_subject_request",
) -> None:
    """Erase a data subject's records (GDPR Art. 17, PIPL Art. 47) from every zone.

    Finds them through the keyed pseudonyms of the subject key and the record ids, removes them
    from the landing files, every zone's Parquet files, the steward decisions, the surrogate
    vault and the identifier map, keeps them out of every later run (filtered as `erased`),
    tags each model version that trained on them (`sovtune.erasure.<request id>`) and appends
    the request to raw/erasure/erasure_log.jsonl (counts and hashes only). Prints counts only.
    """
    from pipelines.steps.ingest.erasure import ErasureError
    from pipelines.steps.privacy.vault import VaultError

    enforce_offline()
    if not subject and not record_id:
        _fail("name at least one --subject KEY or --id ID to erase")
    for flag, what, values in (
        ("--subject", "subject key", subject),
        ("--id", "record id", record_id),
    ):
        if any(not v.strip() for v in values):  # Erasure refuses it too (the desk's path)
            _fail(f"{flag} is empty or blank: name a {what} as dropped; nothing was changed")
    cfg = _profile(profile)
    try:
        entry = erase_request(cfg, subjects=subject, ids=record_id, reason=reason)
    except (ErasureError, VaultError) as exc:
        _fail(str(exc))
    typer.echo(f"erasure {entry['request_id']}: {entry['records']} record(s)")
    for zone, count in entry["removed"].items():
        typer.echo(f"  removed {zone:<32} {count}")
    typer.echo(f"  references redacted {entry['redacted_references']}")
    for digest in entry["landing_not_rewritten"]:
        typer.echo(
            f"  landing file {digest[:12]} no longer reads as it was ingested: "
            "remove the rows at the source"
        )
    for v in entry["versions"]:
        typer.echo(f"  {v['model']} v{v['version']}: {v['tag']} ({v['records']} record(s))")
    typer.echo(f"  log {Path(cfg.data_root).resolve() / 'raw' / 'erasure' / 'erasure_log.jsonl'}")


def erase_record(cfg, record: str, *, reason: str, requested_by: str = "") -> dict:
    """Erase the data subject of the record with pseudonym `record` (every record of that
    subject; the record alone when it has none): the review desk's erasure action."""
    from pipelines.definitions import build_resources
    from pipelines.steps.ingest.erasure import originals_of

    key = build_resources(cfg)["pii"].pseudonym_key()
    record_id, subject = originals_of(Path(cfg.data_root), key, record)
    return erase_request(
        cfg,
        subjects=[subject] if subject else [],
        ids=[record_id],
        reason=reason,
        requested_by=requested_by,
    )


def erase_request(
    cfg, *, subjects: list[str], ids: list[str], reason: str, requested_by: str = ""
) -> dict:
    """What `sovtune erase` does under a loaded profile: erase, tag the model versions that
    trained on the records, append the log; returns the log entry (counts and hashes only).

    Raises:
        ErasureError, VaultError: nothing was changed; the message names what to fix.
    """
    from pipelines.definitions import build_resources
    from pipelines.steps.ingest.erasure import Erasure, affected_versions, write_log
    from pipelines.steps.ingest.landing import ingest_files
    from pipelines.steps.privacy.vault import VAULT_FILE, Vault
    from pipelines.steps.release import registry_store

    resources = build_resources(cfg)
    storage, registry = resources["storage"], resources["registry"]
    root = Path(cfg.data_root).resolve()

    def ingest(files: list[Path]):
        result = ingest_files(
            files,
            landing=storage.landing,
            languages=list(storage.languages),
            max_record_chars=storage.max_record_chars,
            limits=storage.ingest_limits,
        )
        return result.accepted, result.quarantined

    key = resources["pii"].pseudonym_key()
    vault_path = root / "secrets" / VAULT_FILE
    vault = Vault.from_env(vault_path, cfg.pii.vault_key_env) if vault_path.is_file() else None
    outcome = Erasure(
        root,
        key,
        subjects=subjects,
        ids=ids,
        vault=vault,
        ingest=ingest,
        limits=storage.ingest_limits,
    ).run(reason=reason)
    store = registry_store.sqlite_store(registry.resolved_uri)
    versions = registry.versions() if store is None or store.is_file() else []
    lineages = {v["version"]: registry.training_lineage(v["run_id"]) for v in versions}
    affected = affected_versions(lineages, outcome)
    for v in versions:
        if v["version"] not in affected:
            continue
        tag, records = affected[v["version"]]
        registry.set_version_tags(v["version"], {f"sovtune.erasure.{outcome.request_id}": tag})
        outcome.versions.append(
            {
                "model": registry.model_name,
                "version": v["version"],
                "tag": tag,
                "records": records,
                "max_records_per_subject": records,
                "epsilon": v.get("sovtune.epsilon", "?"),
                "delta": v.get("sovtune.delta", "?"),
                "unit": v.get("sovtune.privacy_unit", "example"),
            }
        )
    return write_log(root / "raw", outcome, reason=reason, key=key, requested_by=requested_by)


@vault_app.command("rotate")
def vault_rotate(
    profile: Annotated[str, typer.Option(help="Profile whose data root and key apply.")] = (
        "default"
    ),
) -> None:
    """Re-encrypt the vault under the key in $SOVTUNE_VAULT_NEW_KEY (docs/security.md).

    The current key must be in the variable named by pii.vault_key_env; afterwards put the new
    key there and destroy the old one.
    """
    from pipelines.steps.privacy.vault import VAULT_FILE, Vault, VaultError, key_id

    cfg = _profile(profile)
    new = os.environ.get("SOVTUNE_VAULT_NEW_KEY", "")
    if not new:
        _fail("set SOVTUNE_VAULT_NEW_KEY to the new key (make one with `sovtune vault keygen`)")
    path = Path(cfg.data_root).resolve() / "secrets" / VAULT_FILE
    try:
        rows = Vault.from_env(path, cfg.pii.vault_key_env).rotate(new)
    except VaultError as exc:
        _fail(str(exc))
    typer.echo(f"vault re-encrypted: {rows} entries under key {key_id(new.encode())}")


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="An empty or new folder to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="Dataset format; only llamafactory for now.")
    ] = "llamafactory",
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "default",
    corpus: Annotated[
        Path | None,
        typer.Option(help="Records to export (Parquet); default: the profile's training set."),
    ] = None,
) -> None:
    """Write the scrubbed and screened training set as a LLaMA-Factory dataset folder.

    Files per format (sovtune_alpaca.json, sovtune_sharegpt.json, sovtune_text.json), their
    dataset_info.json and export_manifest.json (counts, the corpus sha256, and every record no
    LLaMA-Factory format holds, by id and reason). Point LLaMA-Factory's `dataset_dir` at the
    folder and name the datasets in `dataset`.
    """
    if fmt != "llamafactory":
        _fail(f"--format {fmt}: unknown format (use llamafactory)")
    from pipelines.steps.ingest.llamafactory import export_dataset
    from pipelines.steps.records import frame_to_records
    from pipelines.steps.storage import read_parquet, sha256_file

    cfg = _profile(profile)
    source = corpus or Path(cfg.data_root).resolve() / "curated" / "curated_corpus.parquet"
    if not source.is_file():
        _fail(
            f"no training set at {source}: run `sovtune run --profile {profile}` first "
            "(or give --corpus)"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        _fail(f"--out {out} must be an empty folder or not exist yet")
    records = frame_to_records(read_parquet(source))
    result = export_dataset(records, out, corpus_sha256=sha256_file(source))
    counts = ", ".join(f"{k}={v}" for k, v in result.datasets.items()) or "none"
    typer.echo(f"exported {result.exported} of {len(records)} records ({counts}) -> {out}")
    if result.not_exported:
        typer.echo(
            f"  not exported: {len(result.not_exported)} (ids and reasons in "
            f"{out / 'export_manifest.json'})"
        )
    typer.echo(f"  LLaMA-Factory: dataset_dir: {out}  dataset: {','.join(result.datasets)}")


INIT_PROFILE = """\
# A Sovereign Tune profile made by `sovtune init`. Every setting left out takes the value of
# pipelines/config/default.yaml (`extends`); `sovtune config show --profile` with this file's
# path prints them all. Settings and what they mean: docs/engineer.md.
profile: {name}
extends: default
# Landing zone, zones, this profile's Dagster home and MLflow store all live under data_root.
data_root: {root}
# Your own base model: a local Hugging Face folder (nothing is downloaded). LoRA adapts the
# modules named in training.target_modules, which differ by architecture: q_proj and v_proj
# for Llama, Mistral, Qwen and Gemma; c_attn for GPT-2; query_key_value for Falcon and BLOOM.
# model:
#   kind: hf
#   name: my-base-model
#   path: /models/my-base-model
# training:
#   target_modules: [q_proj, v_proj]
# The privacy audit measures memorization with canaries: if your data carries some, list them
# in a file like the bundled raw/ground_truth.json and name it here; otherwise the pipeline
# plants its own (plant_canaries, default 6; their list stays in raw/, mode 0600). With
# plant_canaries 0 and no list the audit fails closed and no model is registered
# (docs/engineer.md, Canaries).
# audit:
#   canaries_file: /path/to/canaries.json
#   plant_canaries: 6
"""


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to make (or empty).")],
    name: Annotated[
        str | None, typer.Option(help="Profile name; default: the folder's name.")
    ] = None,
) -> None:
    """Make a profile (DIR/profile.yaml) and an empty landing zone (DIR/landing) to start from.

    Put data into DIR/landing (a JSONL, CSV or Parquet file, or a LLaMA-Factory data folder
    with its dataset_info.json: each top-level entry is one data drop), then
    `sovtune run --profile DIR/profile.yaml`.
    """
    import re

    from pipelines.steps.config import ConfigError, load_config

    root = folder.resolve()
    profile_file = root / "profile.yaml"
    if profile_file.exists():
        _fail(f"{profile_file} already exists: edit it, or choose another DIR")
    name = name or root.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name in ("default", "test"):
        _fail(f"profile name {name!r}: use letters, digits, . _ - (and not default or test)")
    (root / "landing").mkdir(parents=True, exist_ok=True)
    profile_file.write_text(
        INIT_PROFILE.format(name=name, root=json.dumps(str(root))),
        encoding="utf-8",
    )
    try:
        load_config(str(profile_file))
    except ConfigError as exc:  # the template must always validate
        _fail(str(exc))
    typer.echo(f"profile {name}: {profile_file}")
    typer.echo(f"  landing zone    {root / 'landing'}  (one data drop per file or folder)")
    typer.echo(f"  next            sovtune run --profile {profile_file}")


config_app = typer.Typer(no_args_is_help=True, help="Profiles: what a run will use.")
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "default") -> None:
    """Print the effective configuration of a profile (with what it extends), as YAML."""
    import yaml

    from pipelines.steps.config import ConfigError, profile_settings

    cfg = _profile(profile)
    try:
        _, chain = profile_settings(profile)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"# profile {cfg.profile}: " + " <- ".join(str(p) for p in chain))
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@config_app.command("env")
def config_env(profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "default") -> None:
    """Print shell exports of a profile's Dagster home and MLflow store (`make ui` evals them).

    Makes the profile's Dagster home (with a dagster.yaml, telemetry off) when it is missing,
    and points a moved data root's MLflow store at the artifacts under it (MLflow stores their
    locations absolute), so the MLflow UI of a moved root shows its artifacts.
    """
    import shlex

    from pipelines.steps.release.registry_store import rebase_artifacts

    cfg = _profile(profile)
    root = Path(cfg.data_root).resolve()
    mlflow_dir = root / "mlflow"
    if not cfg.registry.tracking_uri:
        rebase_artifacts(mlflow_dir / "mlflow.db", root)
    values = {
        "SOVTUNE_PROFILE": profile,
        "DAGSTER_HOME": str(dagster_home(cfg)),
        "SOVTUNE_MLFLOW_DIR": str(mlflow_dir),
        "SOVTUNE_MLFLOW_URI": cfg.registry.tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        "SOVTUNE_MLFLOW_ARTIFACTS": (mlflow_dir / "artifacts").as_uri(),
    }
    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    app()
