"""The stewards' review desk: a small web app over the screening results of every drop.

Starlette (through FastAPI) renders Jinja2 pages; htmx (vendored, `static/htmx.min.js`, 0BSD)
swaps them in place, so the desk works offline and without a front-end build. Pages show
scrubbed text only. Decisions go to the one steward decisions file
(`curated/steward_decisions.csv`) through `append_decisions`, so the `steward_decisions` sensor
and the screen pick them up exactly as a hand edit.

Safety on a shared host: the app binds to 127.0.0.1; requests must name an allowed host (no DNS
rebinding); a change is a POST whose Origin (or Referer) is the desk itself. The steward is the
OS account running the desk (from the password database, not `$USER`), unless the desk is told
it sits behind an authenticating proxy (`user_header`, off by default): then the proxy's user
header names the steward. Without a proxy any local client could send such a header, so none
is trusted unless configured.
"""

import fcntl
import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pipelines.desk import review
from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity.decisions import NOTES, DecisionsError, append_decisions

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 3100
DEFAULT_USER_HEADER = ""
"""No header is trusted by default: the steward is the OS account running the desk."""
PROXY_USER_HEADER = "X-Forwarded-User"
"""What oauth2-proxy sets: the value to configure behind it (`--user-header`)."""
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
# A steward's account name as it goes into the decisions file: no commas, quotes or spaces.
_STEWARD = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


@dataclass(frozen=True)
class DeskSettings:
    """What the desk serves and whom it trusts.

    Attributes:
        data_root: The profile's data root (its `curated/` and `scrubbed/` zones are read).
        curation: The profile's curation settings (the gates the warnings predict).
        user_header: Request header carrying the steward's name, set only when an
            authenticating proxy sits in front and strips it from clients (oauth2-proxy:
            `X-Forwarded-User`); "" (the default) ignores every header: the OS account decides.
        allowed_hosts: Host names a request may be addressed to.
        eraser: What the "Erase this data subject" action calls (see below).
    """

    data_root: Path
    curation: CurationConfig = field(default_factory=CurationConfig)
    user_header: str = DEFAULT_USER_HEADER
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    eraser: Callable[[str, str], dict] | None = None
    """Erases the data subject of a record: (record pseudonym, steward) -> the erasure log's
    entry (`pipelines.cli.erase_record`); None: the desk offers no erasure."""


def os_user() -> str:
    """The account running the desk, from the password database (`$USER` can be anything)."""
    return pwd.getpwuid(os.getuid()).pw_name


def create_app(settings: DeskSettings) -> FastAPI:
    """The desk as an ASGI app (`uvicorn` serves it; `TestClient` tests it)."""
    app = FastAPI(title="Sovereign Tune review desk", docs_url=None, redoc_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    root = Path(settings.data_root)

    def steward(request: Request) -> str:
        name = request.headers.get(settings.user_header, "") if settings.user_header else ""
        name = name.strip() or os_user()
        if not _STEWARD.fullmatch(name):
            raise DeskError(
                f"steward name from {settings.user_header or 'the OS account'} is not an "
                "account name (letters, digits, . _ @ + - only, at most 64)"
            )
        return name

    def page(request: Request, name: str, status: int = 200, **context) -> Response:
        decisions, error = review.live_decisions(root)
        base = {
            "drops": review.list_drops(root),
            "decisions_error": error,
            "decisions_file": review.decisions_path(root),
            "notes": NOTES,
            "explain": review.EXPLAIN,
            "can_erase": settings.eraser is not None,
        }
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)

    views: dict[str, tuple[tuple, tuple, review.DropView]] = {}  # drop -> stamps, view

    def drop_view(drop: str) -> review.DropView:
        """The drop's view, read again only when one of its files or the decisions changed;
        its scrubbed records and n-gram counts are parsed again only when the scrubbed file
        changed (not on every page)."""
        folder = root / "curated" / "drops" / drop
        files = (folder / "screening.parquet", folder / "curation_summary.json")
        stamp = _stamp(*files, review.decisions_path(root))
        cached = views.get(drop)
        if cached and cached[0] == stamp:
            return cached[2]
        decisions, _ = review.live_decisions(root)
        view = review.load_drop(root, drop, settings.curation, decisions)
        scrubbed = (str(view.scrubbed_path), _stamp(view.scrubbed_path))
        if cached and cached[1] == scrubbed:
            for name in ("records", "_document_frequency"):  # functools.cached_property
                if name in cached[2].__dict__:
                    view.__dict__[name] = cached[2].__dict__[name]
        views[drop] = (stamp, scrubbed, view)
        return view

    @app.exception_handler(DeskError)
    async def desk_error(request: Request, exc: DeskError) -> Response:
        return page(request, "error.html", status=exc.status, message=str(exc))

    @app.exception_handler(FileNotFoundError)
    async def not_found(request: Request, exc: FileNotFoundError) -> Response:
        return page(request, "error.html", status=404, message=str(exc))

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        counts = {d: len(drop_view(d).pending()) for d in review.list_drops(root)}
        return page(request, "index.html", counts=counts, data_root=root)

    @app.get("/drops/{drop}", response_class=HTMLResponse)
    def queue(request: Request, drop: str, screen: str = "", code: str = "", id: str = ""):
        view = drop_view(drop)
        items = view.pending(screen=screen, code=code)
        current = view.items.get(id) or (items[0] if items else None)
        return page(
            request,
            "queue.html",
            view=view,
            items=items,
            current=current,
            detail=_detail(view, current) if current else None,
            screen=screen,
            code=code,
            screens=sorted({s for i in view.items.values() for s in i.screens}),
            codes=sorted({c for i in view.items.values() for c in i.codes}),
            decided=sum(1 for i in view.items.values() if i.verdict),
            unmatched=view.summary.get("steward", {}).get("unmatched", 0),
            warnings=[],
        )

    @app.post("/drops/{drop}/decide", response_class=HTMLResponse)
    async def decide(request: Request, drop: str) -> Response:
        _same_origin(request)
        form = {k: v for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        ids = [i for i in form.get("id", []) if i]
        decision = (form.get("decision") or [""])[0]
        note = (form.get("note") or [""])[0]
        confirmed = (form.get("confirm") or [""])[0] == "1"
        filters = {k: (form.get(k) or [""])[0] for k in ("screen", "code")}
        view = drop_view(drop)
        unknown = [i for i in ids if i not in view.items]
        if not ids or unknown:
            raise DeskError(
                f"no quarantined record {', '.join(unknown) or '(none named)'} in {drop}"
            )
        proposed = dict.fromkeys(ids, decision)
        warnings = review.warnings_for(view, proposed)
        if warnings and not confirmed:
            current = view.items[ids[0]]
            return page(
                request,
                "queue.html",
                status=409,
                view=view,
                items=view.pending(**filters),
                current=current,
                detail=_detail(view, current),
                decided=sum(1 for i in view.items.values() if i.verdict),
                unmatched=view.summary.get("steward", {}).get("unmatched", 0),
                screens=sorted({s for i in view.items.values() for s in i.screens}),
                codes=sorted({c for i in view.items.values() for c in i.codes}),
                warnings=warnings,
                pending_decision={"ids": ids, "decision": decision, "note": note},
                **filters,
            )
        name = steward(request)
        path = review.decisions_path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path.with_name(".steward_decisions.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # two stewards at once append in turn
                append_decisions(path, proposed, steward=name, note=note)
        except DecisionsError as exc:
            raise DeskError(f"nothing saved: {exc}", status=400) from None
        query = urlencode({k: v for k, v in filters.items() if v})
        return RedirectResponse(f"/drops/{drop}" + (f"?{query}" if query else ""), status_code=303)

    @app.post("/drops/{drop}/erase", response_class=HTMLResponse)
    async def erase(request: Request, drop: str) -> Response:
        """Erase the data subject of one record (GDPR Art. 17, PIPL Art. 47): every record of
        theirs leaves every zone (`sovtune erase`); the steward types `erase` to confirm."""
        _same_origin(request)
        form = parse_qs((await request.body()).decode("utf-8"))
        record = (form.get("id") or [""])[0]
        if settings.eraser is None:
            raise DeskError("erasure is not enabled on this desk", status=404)
        if (form.get("confirm") or [""])[0].strip() != "erase":
            raise DeskError("nothing erased: type erase to confirm an erasure", status=400)
        if record not in drop_view(drop).items:
            raise DeskError(f"no quarantined record {record or '(none named)'} in {drop}")
        entry = settings.eraser(record, steward(request))
        views.clear()
        return page(request, "erased.html", message=_erased(entry), drop=drop)

    return app


def _erased(entry: dict) -> str:
    """What the desk says after an erasure: the request id and counts (no id or value)."""
    versions = ", ".join(f"v{v['version']} ({v['tag']})" for v in entry.get("versions", []))
    return (
        f"erasure {entry['request_id']}: {entry['records']} record(s) removed from every zone; "
        f"model versions tagged: {versions or 'none'}"
    )


def _stamp(*files: Path) -> tuple[tuple[int, int], ...]:
    """When each file last changed and its size ((0, 0) for a missing one)."""
    stats = [f.stat() if f.is_file() else None for f in files]
    return tuple((s.st_mtime_ns, s.st_size) if s else (0, 0) for s in stats)


class DeskError(Exception):
    """A request the desk refuses, with the status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _same_origin(request: Request) -> None:
    """Refuse a change requested from another site (a cross-site form post)."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    host = request.headers.get("host", "")
    if not origin or urlsplit(origin).netloc != host:
        raise DeskError("refused: a change must come from the desk's own page", status=403)


@dataclass(frozen=True)
class Detail:
    """What the right-hand pane shows for one record."""

    messages: list  # [(role, segments)]
    representative: list | None
    cluster: list[str]
    cluster_pending: list[str]
    trigger: str


def _detail(view: review.DropView, item: review.Item) -> Detail:
    record = view.records.get(item.id)
    messages = []
    if record is not None:
        for index, message in enumerate(record.messages):
            marks = review.spans(view, item, message, index)
            messages.append((message.role, review.segments(message.content, marks)))
    representative = None
    rep = view.records.get(item.representative) if item.representative else None
    if rep is not None:
        representative = [(m.role, review.segments(m.content, [])) for m in rep.messages]
    members = view.clusters.get(item.cluster, []) if item.cluster else []
    pending = [i for i in members if i in view.items and not view.items[i].verdict]
    trigger = view.trigger_feature(item.cluster) if item.cluster else ""
    return Detail(messages, representative, members, pending, trigger)
