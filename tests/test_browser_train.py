"""A real browser on the Train page: click "Start training", watch the live curve grow, reload the page (the run
is still there, with its curve and Stop), click "Stop"."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.conftest import save_screenshot, wait_for_app

LIVE_POINTS = ("() => { const p = document.querySelector('.st-key-train_live .js-plotly-plot');"
               " return p && p._fullData && p._fullData.length ? p._fullData[0].x.length : 0; }")


@pytest.mark.browser
def test_start_curve_grows_then_stop(start_server, page, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the server's runs use one thread: steady on a busy 2-core machine
    url = start_server()
    page.goto(url + "/Train")
    wait_for_app(page)
    main = page.locator('[data-testid="stMain"]')
    start, stop = main.get_by_role("button", name="Start training"), main.get_by_role("button", name="Stop", exact=True)
    start.wait_for(timeout=60_000)
    assert stop.is_disabled() and start.is_enabled()

    clicked = time.monotonic()
    start.click()
    page.wait_for_function(f"() => ({LIVE_POINTS})() >= 1", timeout=60_000)
    first_point = time.monotonic() - clicked
    points = page.evaluate(LIVE_POINTS)
    page.wait_for_function(f"() => ({LIVE_POINTS})() > {points}", timeout=90_000)
    assert page.evaluate(LIVE_POINTS) > points
    assert main.get_by_role("progressbar").count() == 1
    save_screenshot(page, "train-running")
    print(f"first curve point {first_point:.1f} s after Start")

    assert "job=" in page.url
    page.reload()  # a new browser session: the run is found again from the URL
    wait_for_app(page)
    expect(stop).to_be_enabled(timeout=30_000)
    expect(start).to_be_disabled()
    page.wait_for_function(f"() => ({LIVE_POINTS})() > {points}", timeout=90_000)
    stop.click()
    stopped = main.locator('[data-testid="stAlert"]').filter(has_text="Stopped by the user at step")
    expect(stopped).to_be_visible(timeout=30_000)
    expect(start).to_be_enabled(timeout=10_000)
    expect(stop).to_be_disabled()
    save_screenshot(page, "train-stopped")
