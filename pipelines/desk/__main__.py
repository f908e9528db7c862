"""Serve the review desk: `python -m pipelines.desk [--profile NAME] [--port 3100]`."""

import argparse
import os
import sys
from pathlib import Path

from pipelines.desk.app import (
    DEFAULT_HOSTS,
    DEFAULT_PORT,
    DEFAULT_USER_HEADER,
    PROXY_USER_HEADER,
    DeskSettings,
    create_app,
)


def make_eraser(cfg):
    """The desk's erasure action under a loaded profile: `pipelines.cli.erase_record`."""

    def eraser(record: str, steward: str) -> dict:
        from pipelines.cli import erase_record

        return erase_record(cfg, record, reason="data_subject_request", requested_by=steward)

    return eraser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.desk", description=__doc__)
    parser.add_argument("--profile", default=os.environ.get("SOVTUNE_PROFILE", "default"))
    parser.add_argument("--host", default="127.0.0.1", help="bind address (keep 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--user-header",
        default=os.environ.get("SOVTUNE_DESK_USER_HEADER", DEFAULT_USER_HEADER),
        help="the authenticating proxy's user header naming the steward (e.g. "
        f"{PROXY_USER_HEADER}); only behind a proxy that sets it. Default: none, the OS "
        "account running the desk is the steward",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="a host name requests may be addressed to, besides 127.0.0.1 and localhost "
        "(the proxy's public name)",
    )
    args = parser.parse_args(argv)

    from pipelines.steps.config import ConfigError, load_config, with_environment
    from pipelines.steps.offline import enforce_offline

    enforce_offline()
    try:
        cfg = with_environment(load_config(args.profile))
    except ConfigError as exc:
        print(f"desk: error: {exc}", file=sys.stderr)
        return 2

    settings = DeskSettings(
        data_root=Path(cfg.data_root).resolve(),
        curation=cfg.curation,
        user_header=args.user_header,
        allowed_hosts=(*DEFAULT_HOSTS, *args.allowed_host),
        eraser=make_eraser(cfg),
    )
    import uvicorn

    print(f"review desk on http://{args.host}:{args.port} (data root {settings.data_root})")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
