"""Where a model came from: the git commit of this code and a model card."""

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def git_commit() -> str:
    """The commit of the code that ran, with `+dirty` for uncommitted changes, or `unknown`."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def model_card(
    *, name: str, base_model: str, privacy: dict, audit_passed: bool, fingerprints: dict[str, str]
) -> str:
    """A short markdown model card (facts only) stored with the registered adapter."""
    lines = [
        f"# {name}",
        "",
        f"A LoRA adapter for `{base_model}`, trained by Sovereign Tune with differentially "
        "private SGD (Opacus, Poisson sampling) on a scrubbed and screened enterprise corpus.",
        "",
        "## Differential privacy",
        "",
        *[f"- {key}: {value}" for key, value in sorted(privacy.items())],
        "",
        f"## Privacy audit: {'passed' if audit_passed else 'FAILED'}",
        "",
        "## Data fingerprints (sha256)",
        "",
        *[f"- {key}: `{value}`" for key, value in sorted(fingerprints.items())],
        "",
        "Load with PEFT on top of the base model; only safetensors and JSON files are included.",
    ]
    return "\n".join(lines) + "\n"
