"""Real Chromium: every page's URL as the first request to a fresh server, the ?model= link, and bad input.

Screenshots of each view are saved to test-artifacts/ (see conftest.save_screenshot).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torchvision
from playwright.sync_api import expect

from tests.conftest import save_screenshot, wait_for_app
from ui.page import APP_NAME

ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = sorted((ROOT / "pages").glob("*.py"))
# The URL path of each page, as a user types it (classic pages/ mode: the file name without its number).
PAGE_NAMES = ["Architecture", "Block_anatomy", "Compare", "Train", "Signal_flow", "Degradation", "Lesion",
              "Inside_a_trained_net", "Loss_landscape"]
NAV_LABELS = ["Home", *(name.replace("_", " ") for name in PAGE_NAMES)]
TIMEOUT_MS = 120_000


def tab_title(path: Path) -> str:
    """The browser tab's title the file's `setup_page(title)` call sets (Home: no title)."""
    calls = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup_page"]
    assert len(calls) == 1, f"{path.name} must call setup_page once"
    title = ast.literal_eval(calls[0].args[0]) if calls[0].args else None
    return f"{title} · {APP_NAME}" if title else APP_NAME


pytestmark = pytest.mark.browser


def wait_idle(pg) -> None:
    wait_for_app(pg, TIMEOUT_MS)


def screenshot(pg, name: str) -> Path:
    """The whole page: streamlit scrolls inside stMain, so grow the viewport to its height first; code blocks are
    highlighted a moment after the script ends, so wait for their text."""
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stCode\"]')]"
                         ".every(e => e.textContent.trim().length > 0)", timeout=TIMEOUT_MS)
    for _ in range(3):  # charts may lay out again at the new size
        height = max(1000, min(8000, pg.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")))
        if height == pg.viewport_size["height"]:
            break
        pg.set_viewport_size({"width": 1400, "height": height})
        pg.wait_for_timeout(500)
    return save_screenshot(pg, name)


@pytest.mark.parametrize(("name", "path"), [("", ROOT / "app.py"), *zip(PAGE_NAMES, PAGE_FILES)],
                         ids=["Home", *PAGE_NAMES])
def test_page_url_as_first_request_to_a_fresh_server(start_server, page, name, path):
    base = start_server()
    page.goto(f"{base}/{name}")
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    nav = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]')
    expect(nav).to_have_text(NAV_LABELS, timeout=TIMEOUT_MS)  # Home, not the entry file's name "app"
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # streamlit's own listing is off
    assert page.locator("h1").count() >= 1
    assert page.title() == tab_title(path)  # ui.page.setup_page ran: title, and the logo above the navigation
    assert page.locator('[data-testid="stSidebarLogo"]').count() == 1
    screenshot(page, f"page-{name or 'Home'}")
    nav.first.click()
    page.wait_for_url(f"{base}/", timeout=TIMEOUT_MS)
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == "ResNet Explorer"


def test_model_link_opens_resnet50_and_bad_input_keeps_the_page(start_server, page):
    page.goto(f"{start_server()}/?model=resnet50")
    page.wait_for_url("**/Architecture?model=resnet50", timeout=TIMEOUT_MS)
    wait_idle(page)
    params = page.locator('[data-testid="stMetric"]').filter(has_text="Parameters")
    assert params.locator('[data-testid="stMetricValue"]').inner_text() == "25,557,032"
    assert page.get_by_text("= torchvision.models.resnet50: 25,557,032 parameters").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "architecture-resnet50-link")

    page.set_viewport_size({"width": 1400, "height": 1000})
    field = page.get_by_label("Blocks per stage", exact=True)
    field.fill("3,x")
    field.press("Enter")
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(timeout=TIMEOUT_MS)
    assert "layers must be comma-separated whole numbers" in error.inner_text()
    wait_idle(page)
    assert params.locator('[data-testid="stMetricValue"]').inner_text() == "25,557,032"  # the last valid view
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "architecture-bad-layers")


def test_architecture_draws_its_stage_figure_when_the_expander_opens(start_server, page):
    page.goto(f"{start_server()}/Architecture")  # resnet18
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    expect(main.locator('[data-testid="stCode"]')).to_contain_text("11,689,512 parameters", timeout=TIMEOUT_MS)
    loaded = "() => performance.getEntriesByType('resource').map(e => e.name)"
    assert not [n for n in page.evaluate(loaded) if "PlotlyChart" in n]  # plotly.js not even loaded until asked
    main.get_by_text("Stage figure: channels", exact=False).click()
    plot = "document.querySelector('[data-testid=\"stMain\"] .js-plotly-plot')"
    page.wait_for_function(f"() => {plot} && {plot}._fullData && {plot}._fullData.length === 3", timeout=TIMEOUT_MS)
    channels = page.evaluate(f"() => Array.from({plot}._fullData[0].y)")
    tv = torchvision.models.resnet18()
    assert channels == [tv.conv1.out_channels, *(getattr(tv, f"layer{i}")[-1].conv2.out_channels for i in range(1, 5))]
