"""The compliance report renders in a real browser (headless Chromium) with its plots visible."""

import subprocess

import pytest
from PIL import Image

from pipelines.steps.release.report import build_report, epsilon_plot_png, render_html, roc_plot_png
from tests.browser import CHROMIUM, chromium_command
from tests.test_report import _facts

TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
)


def _screenshot(html: str, tmp_path) -> Image.Image:
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        chromium_command(
            tmp_path / "profile", "--window-size=1000,4000", f"--screenshot={shot}", page.as_uri()
        ),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Image.open(shot).convert("RGB")


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 30) -> int:
    return sum(
        count
        for count, pixel in image.getcolors(maxcolors=1 << 24)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
    )


def test_when_the_report_is_opened_in_chromium_then_both_plots_are_visible(tmp_path):
    facts = _facts()
    attacks = [
        {"attack": "loss", "auc": 0.52, "roc_fpr": [0, 0.4, 1], "roc_tpr": [0, 0.5, 1]},
        {"attack": "zlib", "auc": 0.50, "roc_fpr": [0, 0.5, 1], "roc_tpr": [0, 0.45, 1]},
    ]
    html = render_html(
        build_report(facts),
        epsilon_png=epsilon_plot_png([(1, 0.5), (2, 1.2), (3, 1.6)], target=8.0),
        roc_png=roc_plot_png(attacks),
    )
    with_plots = _screenshot(html, tmp_path)
    without_plots = _screenshot(render_html(build_report(facts)), tmp_path)
    # the epsilon curve and the first ROC curve are drawn in blue, the second ROC curve in orange
    assert _pixels_near(with_plots, TAB_BLUE) > 300
    assert _pixels_near(with_plots, TAB_ORANGE) > 100
    assert _pixels_near(without_plots, TAB_BLUE) < 20
