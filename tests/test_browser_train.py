"""A real browser on the Train page: click "Start training", watch the live curve grow, click "Stop"."""

from __future__ import annotations

import time

import pytest

from tests.conftest import save_screenshot, wait_for_app

FIRST_CHART_POINTS = ("() => { const p = document.querySelector('[data-testid=\"stMain\"] .js-plotly-plot');"
                      " return p && p.data && p.data.length ? p.data[0].x.length : 0; }")


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
    page.wait_for_function(f"() => ({FIRST_CHART_POINTS})() >= 1", timeout=60_000)
    first_point = time.monotonic() - clicked
    points = page.evaluate(FIRST_CHART_POINTS)
    page.wait_for_function(f"() => ({FIRST_CHART_POINTS})() > {points}", timeout=90_000)
    assert page.evaluate(FIRST_CHART_POINTS) > points
    assert main.get_by_role("progressbar").count() == 1
    save_screenshot(page, "train-running")
    print(f"first curve point {first_point:.1f} s after Start")

    stop.click()
    main.get_by_text("Stopped", exact=False).first.wait_for(timeout=30_000)
    wait_for_app(page)
    assert start.is_enabled() and stop.is_disabled()
    save_screenshot(page, "train-stopped")
