"""The report page in a real browser: headless Chromium through Selenium (Debian's chromium and
chromium-driver, which .ci/run installs when missing)."""

import os
import shutil
from pathlib import Path

import pytest

from attnbench.views.html import write_site
from tests.conftest import cli

ROOT = Path(__file__).resolve().parents[2]
TABLE2 = ROOT / "reports" / "measured" / "skyformer-table2.csv"
# The committed screenshot is refreshed only when asked: writing it on every run would leave every
# `make test` with a changed file in the checkout.
SCREENSHOT = os.environ.get("ATTNBENCH_SCREENSHOT")


def _browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("no Chromium here (apt-get install chromium chromium-driver; .ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = _browser(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def _values(driver, column: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById('rows').tBodies[0].rows).filter(r => !r.hidden)"
        f".map(r => r.cells[{column}].dataset.value)")


@pytest.mark.slow
def test_the_table2_page_renders_sorts_filters_and_has_no_console_errors(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page = write_site([TABLE2], tmp_path / "site")
    browser.get(page.as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#rows thead th")]
    time_column = headers.index("time ms")
    browser.find_elements(By.CSS_SELECTOR, "#rows thead th")[time_column].click()
    times = [float(v) for v in _values(browser, time_column) if v]
    assert len(times) > 10 and times == sorted(times)
    browser.find_elements(By.CSS_SELECTOR, "#rows thead th")[time_column].click()
    assert [float(v) for v in _values(browser, time_column) if v] == sorted(times, reverse=True)
    box = browser.find_element(By.ID, "filter")
    box.send_keys("skyformer")
    methods = _values(browser, headers.index("method"))
    assert methods and set(methods) == {"skyformer"}
    assert "rows" in browser.find_element(By.ID, "shown").text
    box.clear()
    box.send_keys(" ")  # an empty filter shows everything again
    assert len(_values(browser, 0)) > len(methods)
    figures = browser.find_elements(By.CSS_SELECTOR, "figure svg")
    assert figures  # the efficiency figure; the others need error or density columns
    for svg in figures:
        size = svg.size
        assert size["width"] > 100 and size["height"] > 100
        assert browser.execute_script("return arguments[0].querySelectorAll('path, line, text, use').length", svg) > 10
    browser.execute_script("document.getElementById('filter').value=''; "
                           "document.getElementById('filter').dispatchEvent(new Event('input'))")
    browser.save_screenshot(SCREENSHOT or str(tmp_path / "html-report.png"))


def test_a_failed_row_shows_its_reason_and_two_reports_are_compared(browser, tmp_path):
    from selenium.webdriver.common.by import By

    report = tmp_path / "r.csv"
    assert cli("run", "-m", "full,skyformer", "-n", "64", "--causal", "--metrics", "flops", "-o",
               str(report)).returncode == 0
    page = write_site([report, report], tmp_path / "site")
    browser.get(page.as_uri())
    failed = browser.find_elements(By.CSS_SELECTOR, "#rows tr.failed")
    assert failed and all("unsupported" in row.text for row in failed)
    assert "causal" in failed[0].find_element(By.CSS_SELECTOR, "td.reason").text
    Select = pytest.importorskip("selenium.webdriver.support.ui").Select
    Select(browser.find_element(By.ID, "status")).select_by_value("unsupported")
    assert set(_values(browser, 1)) == {"skyformer"}  # column 0 is the report (two were given)
    assert "against" in browser.find_element(By.XPATH, "//h2[text()='Compare']/following-sibling::p").text
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []


@pytest.mark.slow
def test_an_existing_page_is_never_replaced_without_force(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("mine")
    result = cli("html", str(TABLE2), "-o", str(site))
    assert result.returncode == 1 and "already exists" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (site / "index.html").read_text() == "mine"
    assert cli("html", str(TABLE2), "-o", str(site), "--force").returncode == 0
    assert (site / "index.html").read_text().startswith("<!DOCTYPE html>")


def test_an_ab_report_shows_its_revisions_and_head_judged_against_base(tmp_path):
    import csv

    from attnbench.views.html import page

    single = tmp_path / "one.csv"
    assert cli("run", "-m", "full", "-n", "64", "--metrics", "flops", "-o", str(single)).returncode == 0
    rows = list(csv.DictReader(single.open()))
    both = tmp_path / "ab.csv"
    with both.open("w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "revision"])
        writer.writeheader()
        for revision in ("HEAD~1 (aaaa)", "HEAD (bbbb)"):
            writer.writerows({**r, "revision": revision} for r in rows)
    text = page([both])
    assert "A/B report ab.csv: HEAD (bbbb) against HEAD~1 (aaaa)" in text and "<th>revision</th>" in text


def test_figures_carry_no_stray_caption_and_the_table_its_legend(small_report):
    from attnbench.views.html import page

    text = page([small_report])
    assert 'id="figure-efficiency"' in text and "<figcaption>" not in text  # each figure has its own title
    assert '<p class="legend">density: attention scores computed' in text
    assert "[yellow]" not in text  # the terminal's markup stays out of the page
