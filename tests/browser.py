"""Headless Chromium (Debian's package) as the browser tests call it: offline, no profile sync."""

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium")


def chromium_command(profile_dir: Path, *args: str) -> list[str]:
    """A headless Chromium command line with a throwaway profile; `args` go last (e.g. a URL)."""
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        *args,
    ]
