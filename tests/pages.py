"""Driving Debian's headless chromium from the tests (Selenium, through the distribution's chromedriver),
and the checks a person would make of the race page on a desk (1400x1000) and on a phone (390x844)."""
import bisect
import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("PELOTON_ARTIFACTS", Path(__file__).parent / "artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESK, PHONE = (1400, 1000), (390, 844)


def open_browser(size=(1400, 1700)):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("the page tests need Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver (./run_local.sh test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={size[0]},{size[1]}", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(*size)
    return driver


def to_the_end(driver) -> None:
    """The page at its last moment, as a viewer gets there: focus on the page, then the End key."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.find_element("tag name", "h1").click()
    ActionChains(driver).send_keys(Keys.END).perform()


def errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def move_slider(driver, fraction: float) -> None:
    driver.execute_script("const s = document.getElementById('time');"
                          "s.value = Math.round(Number(s.max) * arguments[0]);"
                          "s.dispatchEvent(new Event('input'));", fraction)


def dots(driver) -> dict:
    return driver.execute_script(
        "const out = {}; for (const c of document.querySelectorAll('#map circle[data-bib]')) {"
        " if (c.getAttribute('visibility') === 'visible') out[c.dataset.bib] = [c.getAttribute('cx'), c.getAttribute('cy')]; }"
        "return out;")


def sideways_overflow(driver) -> int:
    """How many pixels the page reaches past the screen's right edge (0 when it fits): what scrolls sideways, and
    what the page would clip (the situation strip scrolls on its own and is left out)."""
    return driver.execute_script("""
      const w = document.documentElement.clientWidth;
      let worst = document.documentElement.scrollWidth - w;
      for (const e of document.querySelectorAll('body *')) {
        if (e.closest('#strip') || !e.getClientRects().length) continue;
        worst = Math.max(worst, Math.ceil(e.getBoundingClientRect().right - w));
      }
      return worst;""")


def overlapping_labels(driver) -> list:
    """Pairs of chart text labels (SVG text, the event labels over the charts) whose boxes intersect, per chart."""
    return driver.execute_script("""
      const out = [];
      const charts = [...document.querySelectorAll('svg'), ...document.querySelectorAll('.evlabels')];
      for (const chart of charts) {
        if (!chart.getClientRects().length) continue;
        const labels = [...chart.querySelectorAll(chart.tagName === 'svg' ? 'text' : '.evlabel')]
          .map(e => [e.textContent, e.getBoundingClientRect()]).filter(([t, r]) => t && r.width > 0);
        for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++) {
          const [ta, a] = labels[i], [tb, b] = labels[j];
          if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
            out.push([chart.id || chart.parentElement.closest('[id]').id, ta, tb]);
        }
      }
      return out;""")


def small_text(driver, min_px: float = 12.0) -> list:
    """Visible text set smaller than ``min_px`` (the page's own text; chart text drawn on canvas is sized in
    the chart options)."""
    return driver.execute_script("""
      const out = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        const n = walker.currentNode, e = n.parentElement;
        if (!n.textContent.trim() || !e || e.closest('script,style,datalist,option,title')) continue;
        if (!e.getClientRects().length) continue;
        const px = parseFloat(getComputedStyle(e).fontSize) * (e.closest('svg') ? (() => {
          const svg = e.closest('svg'), vb = svg.viewBox.baseVal; return vb && vb.width ? svg.getBoundingClientRect().width / vb.width : 1; })() : 1);
        if (px < arguments[0] - 0.01) out.push([n.textContent.trim().slice(0, 40), px]);
      }
      return out;""", min_px)


def split_words(driver) -> list:
    """Words of the tables broken across two lines ("Gr/ou/p", "BALLE/RINI"): what a column squeezed below its
    longest word shows. A hyphen is a fair place to break; the free-text last column (the groups' riders) may
    still break a word longer than the whole column, rather than push the page sideways."""
    return driver.execute_script("""
      const out = [];
      for (const cell of document.querySelectorAll('table td, table th')) {
        if (!cell.getClientRects().length || (cell.matches(':last-child:not(.num)') && cell.cellIndex > 0)) continue;
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const n = walker.currentNode, word = /[^\\s-]+/g;
          for (let m; (m = word.exec(n.textContent));) {
            const r = document.createRange();
            r.setStart(n, m.index);
            r.setEnd(n, m.index + m[0].length);
            if (new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1)
              out.push([cell.closest('table').id, m[0]]);
          }
        }
      }
      return out;""")


def chart_axes(driver) -> dict:
    """Each chart's axis labels (uPlot's, the profile's)."""
    return driver.execute_script("""
      const out = {};
      for (const [name, p] of Object.entries(window.pelotonCharts())) if (p) out[name] = p.axes.map(a => a.label || '');
      out.profile = [...document.querySelectorAll('#profile text.axis-label')].map(t => t.textContent);
      return out;""")


def strip_groups(driver) -> list:
    """The strip's group chips' titles (not the virtual yellow jersey's), read in one script: a live page may
    redraw the strip between two reads."""
    return driver.execute_script("return [...document.querySelectorAll('#strip .chip:not(.vyellow)')]"
                                 ".map(c => c.querySelector('b').innerText.trim())")


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    return path


NAMES = {"breakaway": "Breakaway", "chase": "Chase", "peloton": "Peloton", "solo": "Solo", "dropped": "Dropped",
         "gruppetto": "Gruppetto", "group": "Group"}


def expected_strip(data: dict, t: int) -> list:
    """The strip's chips for the moment ``t`` of the page's data: the groups of the last tick at or before it."""
    ticks = sorted({g["event_time"] for g in data["groups"]})
    i = bisect.bisect_right(ticks, t) - 1
    assert i >= 0 and t - ticks[i] <= 120_000
    rows = sorted((g for g in data["groups"] if g["event_time"] == ticks[i]), key=lambda g: g["rank"])[:10]
    return [NAMES[g["label"]] + (": " + data["riders"][str(g["bibs"][0])]["name"] if g["label"] == "solo" and g["bibs"]
                                 else "") + f" · {g['size']}" for g in rows]
