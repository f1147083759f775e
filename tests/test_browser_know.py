"""Real Chromium: Inside a trained net flags a hand-drawn digit uploaded as a large JPEG to a net trained on shapes
(and says what it waited for), and Compare's whole-family chart labels only the configurations picked.

Screenshots are saved to test-artifacts/ (see conftest.save_screenshot): inside-drawn-digit, compare-family.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from resnet_core.runs.execute import execute
from tests.conftest import save_screenshot, wait_for_app
from tests.test_familiarity import FAMILIAR

pytestmark = pytest.mark.browser
TIMEOUT_MS = 180_000


def drawn_two(path: Path, side: int = 2400) -> Path:
    """A "2" in dark ink on white paper, as a drawing app saves it: a JPEG of `side`×`side` pixels."""
    image = Image.new("RGB", (side, side), (255, 255, 255))
    draw, s = ImageDraw.Draw(image), side / 512
    ink, width = (20, 20, 20), int(24 * s)
    draw.arc([130 * s, 60 * s, 380 * s, 300 * s], start=200, end=20, fill=ink, width=width)
    draw.line([(372 * s, 215 * s), (140 * s, 440 * s)], fill=ink, width=width)
    draw.line([(140 * s, 440 * s), (400 * s, 440 * s)], fill=ink, width=width)
    image.save(path, format="JPEG", quality=90)
    return path


def full_height(pg) -> None:
    """Streamlit scrolls inside stMain: grow the viewport to its height so that a screenshot holds the page."""
    height = max(1000, min(8000, pg.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")))
    pg.set_viewport_size({"width": 1400, "height": height})
    pg.wait_for_timeout(500)


def test_inside_flags_a_drawn_digit_sent_to_a_net_that_knows_shapes(start_server, page, tmp_path):
    execute(FAMILIAR, run_dir=tmp_path / "runs" / "20261204-120000-shapes16-ab12")
    base = start_server()
    page.goto(f"{base}/Inside_a_trained_net")
    wait_for_app(page, TIMEOUT_MS)
    expect(page.get_by_text("it knows only these")).to_contain_text(
        "disk, ring, square, frame, triangle, plus, cross, h-stripes, v-stripes, checker", timeout=TIMEOUT_MS)
    page.get_by_text("Upload", exact=True).click()
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    upload.wait_for(state="attached", timeout=TIMEOUT_MS)
    upload.set_input_files(str(drawn_two(tmp_path / "two.jpg")))
    expect(page.get_by_text("Far from the training images.")).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page, TIMEOUT_MS)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Waited")).to_have_count(1)
    expect(page.get_by_text("from the upload's bytes on the server to this result")).to_be_visible()
    expect(page.get_by_text("Drawn here at 384×384")).to_be_visible()  # not 2400×2400 pixels sent to the browser
    assert page.locator('[data-testid="stException"]').count() == 0
    full_height(page)
    save_screenshot(page, "inside-drawn-digit")


def test_compare_labels_only_the_picked_configurations(start_server, page):
    page.goto(f"{start_server()}/Compare")
    wait_for_app(page, TIMEOUT_MS)
    expect(page.locator('[data-testid="stProgress"]')).to_have_count(0, timeout=TIMEOUT_MS)  # every preset summarized
    wait_for_app(page, TIMEOUT_MS)
    family = page.locator(".js-plotly-plot").filter(has_text="Parameters against depth")
    labels = family.locator("g.textpoint text")
    expect(labels).to_have_count(8, timeout=TIMEOUT_MS)  # the four picked configurations, in both panels
    texts = labels.evaluate_all("nodes => nodes.map(n => n.textContent)")  # SVG text has no innerText
    assert sorted(texts) == sorted(["resnet18", "resnet34", "resnet50", "plain50"] * 2)
    full_height(page)
    save_screenshot(page, "compare-family")
