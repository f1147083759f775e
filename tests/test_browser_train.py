"""A real browser on the Train page: click "Start training", watch the live curve grow, reload the page (the run
is still there, with its curve and Stop), click "Stop". The run is a tiny resnet20 in fp32 (`train_tab`): with the
default model a step took 0.6–1.7 s on a first-generation Zen, and auto's bf16 timing 12–27 s more, which this test
of the live curve only waited through (the default's first point is `benchmarks/bench_first_point.py`'s)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.conftest import save_screenshot, wait_for_app
from tests.test_browser_live_truth import train_tab

LIVE_POINTS = ("() => { const p = document.querySelector('.st-key-train_live .js-plotly-plot');"
               " return p && p._fullData && p._fullData.length ? p._fullData[0].x.length : 0; }")


@pytest.mark.browser
def test_start_curve_grows_then_stop(start_server, page, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the server's runs use one thread: steady on a busy 2-core machine
    url = start_server()
    tab = train_tab(page.context, url, 100_000)  # a tab of the test's browser context
    main = tab.locator('[data-testid="stMain"]')
    start, stop = main.get_by_role("button", name="Start training"), main.get_by_role("button", name="Stop", exact=True)
    start.wait_for(timeout=60_000)
    assert stop.is_disabled() and start.is_enabled()

    clicked = time.monotonic()
    start.click()
    tab.wait_for_function(f"() => ({LIVE_POINTS})() >= 1", timeout=60_000)
    first_point = time.monotonic() - clicked
    points = tab.evaluate(LIVE_POINTS)
    tab.wait_for_function(f"() => ({LIVE_POINTS})() > {points}", timeout=90_000)
    assert tab.evaluate(LIVE_POINTS) > points
    assert main.get_by_role("progressbar").count() == 1
    save_screenshot(tab, "train-running")
    print(f"first curve point of the tiny fp32 run {first_point:.1f} s after Start")

    assert "job=" in tab.url
    tab.reload()  # a new browser session: the run is found again from the URL
    wait_for_app(tab)
    expect(stop).to_be_enabled(timeout=30_000)
    expect(start).to_be_disabled()
    tab.wait_for_function(f"() => ({LIVE_POINTS})() > {points}", timeout=90_000)
    stop.click()
    stopped = main.locator('[data-testid="stAlert"]').filter(has_text="Stopped by the user at step")
    expect(stopped).to_be_visible(timeout=30_000)
    expect(start).to_be_enabled(timeout=10_000)
    expect(stop).to_be_disabled()
    save_screenshot(tab, "train-stopped")
