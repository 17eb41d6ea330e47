"""The whole chain on params/smoke.yaml, the built book in a headless browser, and secrets.

One session-scoped fixture runs ``sgvalues run`` (twice: the default run, and a second run of
notebooks 01 and 04 for the model comparison) and ``sgvalues book`` into temporary folders, with a fake
``OPENAI_API_KEY`` in the environment. Then:

* the browser test serves the HTML on 127.0.0.1, drives Debian's Chromium over the DevTools
  protocol and checks every page of the toc: it loads, every image decodes
  (``naturalWidth > 0``), every notebook chapter shows at least as many images as its executed
  notebook has figure outputs, internal links and anchors resolve, math is typeset, the
  synthetic-data banner is there, and nothing is fetched from outside 127.0.0.1;
  screenshots go to ``artifacts/``;
* the secrets test greps every file of the run folders and the built book for the fake key.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
import pytest

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import accuracy_score

from sgvalues import book as bk
from sgvalues.book import toc_files
from sgvalues.metrics import score as _score_table
from sgvalues.models.embedded import cache_root
from sgvalues.report import comparison, intro

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "params" / "smoke.yaml"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAKE_KEY = "sk-test-sgvalues-FAKE-KEY-9f3c1e7b2a"
ARTIFACTS = REPO / "artifacts"
SECOND_RUN = "smoke-second"
SECOND_ONLY = "01,04"


def _sgvalues(args: list[str], env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ sgvalues {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run([sys.executable, "-m", "sgvalues", *args], cwd=REPO, env=env,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"sgvalues {' '.join(args)} failed (exit {proc.returncode}):\n"
                    + "\n".join(log.read_text().splitlines()[-40:]))
    return time.perf_counter() - t0


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """Run the smoke chain once for both tests; return its folders and timings."""
    if not SMOKE.is_file():
        pytest.fail(f"{SMOKE}: the smoke params file is missing")
    tmp = tmp_path_factory.mktemp("chain")
    runs_root, book_dir = tmp / "runs", tmp / "book"
    # The book's sources, without anything generated in the working tree.
    shutil.copytree(REPO / "book", book_dir, ignore=shutil.ignore_patterns("_build", "chapters"))
    env = dict(os.environ)
    env.update({
        "OPENAI_API_KEY": FAKE_KEY,
        # The real cache: the embedded model is converted once per machine, not per test.
        "SGVALUES_CACHE": str(cache_root()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    log = tmp / "chain.log"
    timings = {
        "run_default": _sgvalues(["run", "--params", str(SMOKE), "--run", "default",
                                  "--runs-root", str(runs_root)], env, log),
        # A second run for the model comparison: only what it reads (prepare, then fine-tune
        # and evaluate base and SFT), to keep the chain within its time budget.
        "run_second": _sgvalues(["run", "--params", str(SMOKE), "--run", SECOND_RUN, "--only", SECOND_ONLY,
                                 "--runs-root", str(runs_root)], env, log),
        "book": _sgvalues(["book", "--default-run", "default", "--runs-root", str(runs_root),
                           "--book-dir", str(book_dir), "--out", str(book_dir / "_build")], env, log),
    }
    print(f"\nsmoke chain timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    html = book_dir / "_build" / "html"
    assert (html / "index.html").is_file()
    return {"tmp": tmp, "runs": runs_root, "book": book_dir, "html": html, "log": log,
            "timings": timings}


# ----------------------------------------------------------------------------- browser


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


def _serve(folder: Path):
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


class _DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60):
        end = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self):
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with remote debugging on a free port; yields the /json endpoint."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make chromium` installs Debian's chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1600",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
         "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/json/version", timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chromium did not open its DevTools port")
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


_PAGE_STATE = r"""
(async () => {
  // MathJax 2 typesets after load; wait for its queue when the page has math.
  const hasMath = document.querySelector('div.math, span.math') !== null;
  if (hasMath) {
    for (let i = 0; i < 100 && !(window.MathJax && MathJax.Hub); i++) await new Promise(r => setTimeout(r, 100));
    // bounded: a MathJax that never finishes is reported as untypeset math, not a hung test
    if (window.MathJax && MathJax.Hub) await Promise.race([
      new Promise(r => MathJax.Hub.Queue(() => r(true))), new Promise(r => setTimeout(r, 30000))]);
  }
  const main = document.querySelector('main') || document.body;
  return {
    title: document.title,
    banner: (document.querySelector('.bd-header-announcement') || {}).innerText || '',
    h1: Array.from(main.querySelectorAll('h1')).map(h => h.innerText),
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, inMain: main.contains(i)})),
    hasMath: hasMath,
    mathRendered: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG, mjx-container').length,
    mathErrors: document.querySelectorAll('.MathJax_Error, merror').length,
    links: Array.from(main.querySelectorAll('a[href]')).map(a => a.href),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
    text: main.innerText,
    // what a reader sees of each table: its width against the column, and its cells
    column: (main.querySelector('article') || main).clientWidth,
    tables: Array.from(main.querySelectorAll('table')).filter(t => t.offsetParent !== null).map(t => {
      let box = t.parentElement;  // the nearest scrolling wrapper, if any, hides an overflow
      while (box && box !== main && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
      return {
        width: t.getBoundingClientRect().width,
        scroll: box ? box.scrollWidth - box.clientWidth : 0,
        header: Array.from(t.querySelectorAll('thead th')).map(c => c.innerText.trim()),
        rows: Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.children).map(c => c.innerText.trim())),
      };
    }),
    // images: rendered width over natural width (a figure drawn at the book's dpi is legible
    // when it is not shrunk much below its natural size)
    figures: Array.from(main.querySelectorAll('img')).filter(i => i.offsetParent !== null).map(i => ({
      src: i.currentSrc || i.src, natural: i.naturalWidth, shown: i.getBoundingClientRect().width})),
    // a folded cell's input sits in a closed <details>: laid out (offsetParent is set) but not shown
    codeShown: Array.from(main.querySelectorAll('.cell_input'))
      .filter(e => e.offsetParent !== null && e.closest('details:not([open])') === null).length,
    nav: Array.from(document.querySelectorAll('nav.bd-docs-nav a, .bd-sidebar-primary a.reference'))
      .map(a => a.innerText.trim()).filter(t => t),
    height: document.documentElement.scrollHeight,
    // the page itself wider than the window: a reader scrolls sideways to read it
    pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
    // script files: MathJax 2 also keeps each typeset formula as a <script type="math/tex">,
    // so a page rich in maths has many inline script elements; only files count here
    scripts: Array.from(document.scripts).filter(s => s.src).length,
  };
})()
"""


#: a table cell a reader should never see
_BAD_CELL = re.compile(r"^(nan|NaN|NaT|<NA>|None|inf|-inf)$")
#: a count printed as a float ("12300.000", "400.0")
#: (a rate printed to three decimals, "0.000" or "1.000", is not one: rates lie in [0, 1])
_FLOAT_COUNT = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d{2,})\.0+$|^-?\d+\.0$")
#: TeX that MathJax did not typeset, or a backslash eaten by a Python string ("frac12", "exttie")
_RAW_MATH = re.compile(r"\\(frac|tfrac|dfrac|text|mathrm|sum|log|sqrt|hat|bar)\b|\bfrac12\b|\bext(tie|rm)\b|\$\$")
#: a progress line of a stage (these go to the terminal, not the book)
_PROGRESS_TEXT = re.compile(r"evaluated \d+/\d+|\d+%\|[#█ ]|^judge: |\bit/s\]", re.MULTILINE)
#: an absolute path of the building machine
_ABS_PATH = re.compile(r"(?<![\w.:/])/(?:work|home|tmp|root|Users|var|private)/[\w.-]+/\S*")
#: shrink factor below which a figure's labels get too small to read (11 pt at 110 dpi -> ~9 px)
_MIN_FIGURE_SCALE = 0.55


def _reader_problems(page: str, st: dict) -> list[str]:
    """What a reader would object to on one rendered page (issue 17's checks), as messages."""
    out = []
    for k, t in enumerate(st.get("tables", []), 1):
        if t["width"] > st["column"] + 1:
            out.append(f"{page}: table {k} is {t['width']:.0f} px wide in a {st['column']:.0f} px column")
        elif t["scroll"] > 1:
            out.append(f"{page}: table {k} overflows its box by {t['scroll']:.0f} px (a reader must scroll)")
        # a percentage column prints one decimal ("10.0"): not a count
        header = t.get("header", [])
        cells = [c for row in t["rows"] for i, c in enumerate(row)
                 if not (i < len(header) and "%" in header[i])]
        bad = sorted({c for c in cells if _BAD_CELL.match(c)})
        if bad:
            out.append(f"{page}: table {k} shows missing values as {bad}")
        floats = sorted({c for c in cells if _FLOAT_COUNT.match(c)})
        if floats:
            out.append(f"{page}: table {k} prints counts as floats {floats[:5]}")
    text = st.get("text", "")
    if re.search(r"^\s*\|.*\|\s*$\n^\s*\|[\s:|-]*-{3}[\s:|-]*\|\s*$", text, re.MULTILINE):
        out.append(f"{page}: raw pipe table in the text")
    if m := _RAW_MATH.search(text):
        out.append(f"{page}: unrendered maths {m.group(0)!r}")
    if "\t" in text.replace("\t\n", "\n") and re.search(r"\t(frac|ext)", text):
        out.append(f"{page}: a tab where a backslash was meant")
    if found := _PROGRESS_TEXT.findall(text):
        out.append(f"{page}: progress lines in the text {found[:3]}")
    if found := _ABS_PATH.findall(text):
        out.append(f"{page}: absolute paths of the building machine {found[:3]}")
    for f in st.get("figures", []):
        if f["natural"] > 0 and f["shown"] / f["natural"] < _MIN_FIGURE_SCALE:
            out.append(f"{page}: figure {f['src'].rsplit('/', 1)[-1]} is shrunk to "
                       f"{100 * f['shown'] / f['natural']:.0f}% of its size (labels unreadable)")
    if st.get("pageOverflow", 0) > 1:
        out.append(f"{page}: the page is {st['pageOverflow']} px wider than the window")
    if st.get("scripts", 0) > 150:  # MathJax itself loads ~80 files (its config and extensions)
        out.append(f"{page}: {st['scripts']} script files (static files globbed into the page?)")
    if page.startswith("chapters/") and st.get("codeShown", 0) > 1:
        out.append(f"{page}: {st['codeShown']} code cells open (only the parameters cell should be)")
    return out


def _figure_count(nb_path: Path) -> tuple[int, int]:
    """(figures announced, figure outputs): "**Figure.**" cells and image outputs of a notebook."""
    nb = nbformat.read(nb_path, as_version=4)
    announced = sum(1 for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("**Figure.**"))
    outputs = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {}))
    return announced, outputs


@pytest.mark.slow
def test_book_renders_in_chromium(chain, browser):
    html = chain["html"]
    pages = toc_files(chain["book"])
    assert len(pages) >= 12
    for page in pages:
        assert (html / f"{page}.html").is_file(), f"toc page {page} was not built"

    server = _serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    target = json.loads(urllib.request.urlopen(browser + "/json/list", timeout=10).read())
    ws_url = next(t["webSocketDebuggerUrl"] for t in target if t.get("type") == "page")
    dt = _DevTools(ws_url)
    requests: list[str] = []
    states: dict[str, dict] = {}
    shots: list[Path] = []
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        dt.call("Page.enable")
        dt.call("Runtime.enable")
        dt.call("Network.enable")
        dt.call("Log.enable")
        dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False)
        for page in pages:
            dt.events.clear()
            dt.call("Page.navigate", url=urljoin(base, f"{page}.html"))
            dt.wait_event("Page.loadEventFired")
            state = dt.evaluate(_PAGE_STATE)
            requests += [e["params"]["request"]["url"] for e in dt.events
                         if e.get("method") == "Network.requestWillBeSent"]
            # failed loads (404s of scripts, fonts, images) and JavaScript errors
            state["errors"] = [
                f"JavaScript: {e['params']['exceptionDetails'].get('exception', {}).get('description', '')[:200]}"
                for e in dt.events if e.get("method") == "Runtime.exceptionThrown"] + [
                f"{e['params']['entry'].get('url', '')} {e['params']['entry']['text']}" for e in dt.events
                if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                # favicon: the browser asks on its own; about:blank: MathJax 2 probes web-font
                # support with a font at about:blank, which Chromium refuses, by design
                and not e["params"]["entry"].get("url", "").endswith("/favicon.ico")
                and "about:blank" not in e["params"]["entry"]["text"] + e["params"]["entry"].get("url", "")
                # MathJax 2 sometimes probes its TeX web fonts (under CPU load, after a font
                # timeout) though it is set to STIX-Web; the bundled copy has only STIX-Web, and
                # the math still renders (checked below)
                and "/_static/mathjax/fonts/HTML-CSS/TeX/" not in e["params"]["entry"].get("url", "")]
            states[page] = state
            # every page, its whole length (capped), for a reader's look and for CI artifacts
            height = min(int(state.get("height") or 1600), 12000)
            # a window as tall as the page: Chromium's captureBeyondViewport shifted some pages'
            # content left in the picture though the page itself was laid out correctly
            dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
            shot = dt.call("Page.captureScreenshot", format="png",
                           clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 0.75})
            dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False)
            path = ARTIFACTS / f"book-{page.replace('/', '-')}.png"
            path.write_bytes(base64.b64decode(shot["data"]))
            shots.append(path)
    finally:
        dt.close()
        server.shutdown()
    for p in shots:
        print(f"screenshot: {p}")

    problems = []
    for page, st in states.items():
        if st["errors"]:
            problems.append(f"{page}: {st['errors']}")
        if not st["h1"]:
            problems.append(f"{page}: no title (h1)")
        if "404" in st["title"]:
            problems.append(f"{page}: not found")
        if "synthetic" not in st["banner"].lower():
            problems.append(f"{page}: synthetic-data banner missing")
        broken = [i["src"] for i in st["images"] if not i["ok"]]
        if broken:
            problems.append(f"{page}: broken images {broken}")
        if st["hasMath"] and (st["mathRendered"] == 0 or st["mathErrors"]):
            problems.append(f"{page}: math not typeset ({st['mathRendered']} rendered, {st['mathErrors']} errors)")
        if re.search(r"\?\?|\[\?\]|undefined label", st["text"]):
            problems.append(f"{page}: unresolved reference text")
        problems += _reader_problems(page, st)
        if page.startswith("chapters/"):
            # every "**Figure.**" caption follows a figure: the notebook has the image output
            # and the page shows it, decoded
            announced, outputs = _figure_count(chain["book"] / f"{page}.ipynb")
            shown = sum(1 for i in st["images"] if i["ok"] and i["inMain"])
            if announced == 0 or outputs < announced or shown < announced:
                problems.append(f"{page}: {announced} figure captions, {outputs} image outputs, "
                                f"{shown} images shown")
        # internal links: the target page exists, and its anchor when we visited that page
        for link in st["links"]:
            u = urlparse(link)
            if not link.startswith(base):
                continue
            rel = unquote(u.path[len(urlparse(base).path):])
            if not (html / rel).is_file():
                problems.append(f"{page}: link to missing {rel}")
            elif u.fragment and rel.endswith(".html") and rel[:-5] in states \
                    and u.fragment not in states[rel[:-5]]["ids"]:
                problems.append(f"{page}: link to missing anchor {rel}#{u.fragment}")
    external = sorted({r for r in requests if not r.startswith((base, "data:", "blob:", "about:"))})
    if external:
        problems.append(f"requests outside the book: {external}")
    assert not problems, "\n".join(problems)
    # the comparison page has its figure
    assert any("model_comparison.png" in i["src"] and i["ok"] for i in states["model_comparison"]["images"])
    # both runs are in the comparison table
    table_text = states["model_comparison"]["text"]
    assert "(default)" in table_text and f"({SECOND_RUN})" in table_text
    # numbered chapters in the sidebar, continuous across parts ("7." is the fairness chapter)
    nav = states["intro"]["nav"]
    assert any(re.match(r"^1\.\s", t) for t in nav) and any(re.match(r"^7\.\s.*[Ff]airness", t) for t in nav), nav
    # the intro names the default run's model and a computed headline
    assert "This build" in states["intro"]["text"] and "SmolLM2" in states["intro"]["text"]


# ----------------------------------------------------------------------------- secrets


@pytest.mark.slow
def test_executed_chapters_carry_no_stderr(chain):
    """Warnings and progress bars of third-party libraries would print into the book as
    red stderr blocks; every notebook of the default run must have none."""
    notebooks = sorted((chain["runs"] / "default" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    noisy = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        text = [o.get("text", "") for c in nb.cells if c.cell_type == "code"
                for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        if text:
            noisy[path.name] = "".join(text)[:300]
    assert not noisy, f"stderr in executed notebooks: {noisy}"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


@pytest.mark.slow
def test_api_key_is_never_written(chain, tmp_path):
    needle = FAKE_KEY.encode()
    # the search itself finds a planted key (so an empty result means something)
    planted = tmp_path / "deep" / "x.json"
    planted.parent.mkdir()
    planted.write_text(json.dumps({"k": FAKE_KEY}))
    assert _files_containing(tmp_path, needle) == [planted]

    searched = [chain["runs"], chain["book"]]
    n_files = sum(1 for r in searched for p in r.rglob("*") if p.is_file())
    assert n_files > 50  # the runs and the built book really are there
    leaks = [p for r in searched for p in _files_containing(r, needle)]
    assert not leaks, f"the API key was written to: {leaks}"
    # nor in the log of the commands
    assert FAKE_KEY not in chain["log"].read_text()


# ----------------------------------------------------------------------------- fast unit tests


def _predictions(rng, n, accuracy_p):
    target = rng.integers(1, 11, n)
    pred = np.where(rng.random(n) < accuracy_p, target, rng.integers(1, 11, n)).astype(float)
    status = rng.choice(["ok", "ok", "ok", "refused", "unparseable"], n)
    pred[status == "unparseable"] = np.nan
    # a refused answer may still carry a parsed code: it must count as invalid all the same
    return pd.DataFrame({"sample_id": [f"Q{i}_s" for i in range(n)], "split": "ood",
                         "question_id": [f"Q{i}" for i in range(n)], "stratum": "sex",
                         "subgroup": "sex:Male", "levels": '{"sex": "Male"}', "target": target,
                         "scale_min": 1, "scale_max": 10, "prediction": pred, "status": status})


def score(df: pd.DataFrame) -> pd.Series:
    """The overall row of :func:`sgvalues.metrics.score` (the book's one scorer)."""
    return _score_table(df).iloc[0]


def test_score_matches_sklearn_and_hand_nmae():
    df = _predictions(np.random.default_rng(0), 200, 0.5)
    s = score(df)
    valid = (df.status == "ok") & df.prediction.notna()
    # accuracy: invalid rows get an impossible label so they can only be wrong
    assert s["accuracy"] == pytest.approx(accuracy_score(df.target, df.prediction.where(valid, -1)))
    err = [abs(p - t) / 9 if v else 1.0 for p, t, v in zip(df.prediction, df.target, valid)]
    assert s["nmae"] == pytest.approx(sum(err) / len(err))
    assert s["invalid_rate"] == pytest.approx(1 - valid.mean())
    assert s["refusal_rate"] == pytest.approx((df.status == "refused").mean())
    assert s["n"] == 200


def _fake_run(root, name, display, synthetic, frames):
    rd = root / name
    (rd / "predictions").mkdir(parents=True)
    (rd / "manifest.json").write_text(json.dumps({"params": {"name": name, "display_name": display},
                                                 "data": {"synthetic": synthetic}}))
    for fname, df in frames.items():
        df.to_csv(rd / "predictions" / fname, index=False)
    return rd


def test_comparison_gathers_every_run(tmp_path):
    rng = np.random.default_rng(1)
    frames_a = {"base_ood.csv": _predictions(rng, 60, 0.2), "sft_ood.csv": _predictions(rng, 60, 0.6)}
    frames_b = {"base_ood.csv": _predictions(rng, 40, 0.4), "base_train.csv": _predictions(rng, 30, 0.4)}
    _fake_run(tmp_path / "runs", "default", "Model A", True, frames_a)
    _fake_run(tmp_path / "runs", "other", None, False, frames_b)
    (tmp_path / "runs" / "other" / "predictions" / "notes.csv").write_text("x\n1\n")  # ignored
    tidy = comparison.comparison_table(tmp_path / "runs")
    got = tidy.set_index(["run", "tag", "split", "metric"])["value"]
    for run, frames in (("default", frames_a), ("other", frames_b)):
        for fname, df in frames.items():
            tag, split = fname[:-4].split("_")
            s = score(df)
            for metric in ("accuracy", "nmae", "invalid_rate"):
                assert got[(run, tag, split, metric)] == pytest.approx(s[metric])
    assert set(tidy.model) == {"Model A (default)", "other"}
    nq = tidy.groupby(["run", "tag", "split"])["n_questions"].first()
    assert nq[("other", "base", "train")] == frames_b["base_train.csv"]["question_id"].nunique()
    # the page: one table per split; a run appears in the tables of the splits it evaluated
    page = bk.write_comparison(tmp_path / "runs", tmp_path / "out").read_text()
    assert "nan" not in page.lower().replace("nmae", "")
    ood, train = page.split(":name: tbl-model-comparison-ood")[1].split(":name: tbl-model-comparison-train")
    train = train.split("```")[0]  # the train table only, not the published table after it
    rows = lambda text: [[c.strip() for c in line.strip("|").split("|")]  # noqa: E731
                         for line in text.splitlines()
                         if line.startswith("| ") and not line.startswith(("| model |", "| ---"))]
    s = score(frames_a["sft_ood.csv"])
    # no data folder in these runs: no baseline or noise reference beside them ("–")
    assert ["Model A (default) (synthetic)", "sft", f"{s['accuracy']:.3f}", f"{s['nmae']:.3f}", "–", "–", "–",
            f"{s['invalid_rate']:.3f}", "60", "60"] in rows(ood)
    assert {r[0] for r in rows(train)} == {"other (WVS-7)"}  # Model A has no train predictions
    assert [r[1] for r in rows(ood)] == ["base", "sft", "base"]
    assert dict(zip(tidy.run, tidy.synthetic)) == {"default": True, "other": False}

    page = bk.write_comparison(tmp_path / "runs", tmp_path / "out", image_prefix="chapters/")
    text = page.read_text()
    assert "Model A (default)" in text and "| other (WVS-7) |" in text
    assert "```{figure} chapters/figures/model_comparison.png" in text
    assert (tmp_path / "out" / "figures" / "model_comparison.png").stat().st_size > 1000
    # the SFT gain (points) of the run that has both states, beside the published mean gain
    gain = 100 * (score(frames_a["sft_ood.csv"])["accuracy"]
                  - score(frames_a["base_ood.csv"])["accuracy"])
    assert f"Model A (default): {gain:+.1f} points" in text
    assert "published (Tan et al. 2026): mean gain 17.4" in text
    # fence info strings must not contain backticks (CommonMark would not open the directive)
    assert not [ln for ln in text.splitlines() if ln.startswith("```{") and "`" in ln[3:]]


def test_bad_predictions_file_is_a_clear_error(tmp_path):
    df = _predictions(np.random.default_rng(2), 5, 0.5).drop(columns=["status"])
    _fake_run(tmp_path / "runs", "r", None, True, {"base_ood.csv": df})
    with pytest.raises(ValueError, match=r"base_ood.csv: missing column\(s\) status"):
        comparison.comparison_table(tmp_path / "runs")
    with pytest.raises(bk.BookError, match=r"base_ood.csv: missing column\(s\) status"):
        bk.write_comparison(tmp_path / "runs", tmp_path / "out")


def test_config_banner_only_for_synthetic_and_no_thebe(tmp_path):
    shutil.copytree(REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_build", "chapters"))
    for synthetic, banner in ((True, True), (None, True), (False, False)):
        cfg = yaml.safe_load(bk.write_config(tmp_path / "book", synthetic, "default").read_text())
        theme = cfg["sphinx"]["config"]["html_theme_options"]
        assert ("announcement" in theme) is banner
        assert "sphinx_thebe" not in cfg["sphinx"]["config"]["extensions"]
        assert cfg["execute"]["execute_notebooks"] == "off"
        assert "sphinx_multitoc_numbering" in cfg["sphinx"]["config"]["extensions"]
        # markdown computed by a chapter renders as MyST (tables, math), and the book's CSS loads
        assert cfg["sphinx"]["config"]["nb_render_markdown_format"] == "myst"
        assert "sgvalues.css" in cfg["sphinx"]["config"]["html_css_files"]
        assert (tmp_path / "book" / "_css" / "sgvalues.css").is_file()
        # jupyter-book adds every .js under html_static_path as a script tag when the book has
        # a "_static" folder: with the bundled MathJax that is ~300 scripts and a MathJax that
        # never finishes typesetting
        assert not (tmp_path / "book" / "_static").exists()
    assert "Synthetic data" in yaml.safe_load(
        bk.write_config(tmp_path / "book", True, "default").read_text())["sphinx"]["config"]["html_theme_options"]["announcement"]


def test_toc_is_captioned_and_assemble_refuses_missing_pages(tmp_path):
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    assert [p["caption"] for p in toc["parts"]] == [
        "Data and landscape", "Fine-tuning and evaluation", "Fairness and models", "Reference"]
    # the study's parts are numbered (continuously: write_config adds sphinx_multitoc_numbering),
    # the Reference part is not, and it comes last, so "Next" never leaves the chapters for a guide
    assert [bool(p.get("numbered")) for p in toc["parts"]] == [True, True, True, False]
    chapters = [c["file"] for p in toc["parts"][:3] for c in p["chapters"]]
    assert chapters[:8] == [f"chapters/{n}" for n in (
        "01_data_preparation", "02_modal_diversity", "03_compositional_split", "04_lora_finetuning",
        "05_structured_evaluation", "06_open_ended_evaluation", "07_fairness_analysis", "08_beyond_the_paper")]
    reference = {c["file"] for c in toc["parts"][3]["chapters"]}
    assert {"training", "annotation_guide", "methods", "limitations", "reproduce", "seminar", "references",
            "synthetic_data"} <= reference
    files = toc_files(REPO / "book")
    assert files[0] == "intro" and len(files) == len(set(files))
    # every non-generated page of the toc is committed
    missing = [f for f in files if not f.startswith("chapters/") and not (REPO / "book" / f"{f}.md").is_file()]
    assert not missing, f"toc names missing pages: {missing}"
    # a run without chapter 07 cannot make a book whose toc names it
    shutil.copytree(REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_build", "chapters"))
    rd = _fake_run(tmp_path / "runs", "default", None, True, {})
    (rd / "notebooks").mkdir()
    for f in files:
        if f.startswith("chapters/") and not f.endswith("07_fairness_analysis"):
            nbformat.write(nbformat.v4.new_notebook(), rd / "notebooks" / f"{f.split('/')[1]}.ipynb")
    with pytest.raises(bk.BookError, match="07_fairness_analysis"):
        bk.assemble("default", tmp_path / "runs", tmp_path / "book")
    with pytest.raises(bk.BookError, match="default run not found"):
        bk.assemble("nope", tmp_path / "runs", tmp_path / "book")


def test_chapter_copy_keeps_results_only(tmp_path):
    """Executed chapters lose progress lines, stderr and machine paths; code folds, parameters stay open."""
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_dir = "runs/default"', metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell(f'run_dir = "{run_dir}"', metadata={"tags": ["injected-parameters"]})
    work = nbformat.v4.new_code_cell("evaluate()")
    work.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=(
            "evaluated 50/400 new samples (6.0/s; 0 cached)\n"
            f"{run_dir}/predictions/base_ood.csv: accuracy 0.925\n"
            "judge: 12 verdicts for sft vs reference (logprob mode)\n")),
        nbformat.v4.new_output("stream", name="stderr", text="Warning: something\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": f"Sheet `{run_dir}/judge/a.csv`",
                                                     "text/plain": "x"}),
        nbformat.v4.new_output("stream", name="stdout", text=" 40%|####      | 4/10 [00:01<00:02]\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), params, injected, work]
    nbformat.write(nb, run_dir / "notebooks" / "01_x.ipynb")
    (out,) = bk.copy_chapters(run_dir, tmp_path / "chapters")
    cells = nbformat.read(out, as_version=4).cells
    assert "hide-input" not in cells[1].metadata["tags"] and "hide-cell" not in cells[1].metadata["tags"]
    assert "hide-cell" in cells[2].metadata["tags"] and "hide-input" in cells[3].metadata["tags"]
    text = json.dumps([o for c in cells if c.cell_type == "code" for o in c.outputs])
    assert str(tmp_path) not in text and str(tmp_path) not in cells[2].source
    assert "runs/r1/predictions/base_ood.csv: accuracy 0.925" in text and "runs/r1/judge/a.csv" in text
    assert "evaluated 50/400" not in text and "judge: 12" not in text and "40%" not in text
    assert "Warning" not in text
    assert [o["output_type"] for o in cells[3].outputs] == ["stream", "display_data"]


def test_run_summary_names_model_data_and_scores(tmp_path):
    """The intro's fragment: the run's own model, data and OOD scores, formatted by report.format."""
    rng = np.random.default_rng(5)
    base, sft = _predictions(rng, 1234, 0.3), _predictions(rng, 1234, 0.6)
    rd = _fake_run(tmp_path / "runs", "r1", "Tiny LM", True, {"base_ood.csv": base, "sft_ood.csv": sft,
                                                             "base_train.csv": sft})
    (rd / "data").mkdir()
    (rd / "data" / "prepare_summary.json").write_text(json.dumps({
        "synthetic": True, "n_respondents": 2012, "n_questions": 246, "subgroups": {"train": 50, "ood": 48},
        "samples": {"train": 12300, "ood": 11808}}))
    text = intro.run_summary(rd)
    assert "Tiny LM" in text and "synthetic" in text and "2,012 respondents" in text and "11,808" in text
    for df in (base, sft):
        valid = df["status"] == "ok"
        acc = float(((df["prediction"] == df["target"]) & valid).mean())
        assert f"{acc:.3f}" in text
    assert "1,234 of 11,808 samples" in text and "nan" not in text.lower()
    assert "whole OOD split" not in text  # 1,234 of 11,808 is a part of it, and says so
    assert "win rate" not in text  # no judge tables, no judge sentence
    # a state scored on every OOD sample is named as the whole split
    (rd / "data" / "prepare_summary.json").write_text(json.dumps({
        "synthetic": True, "n_respondents": 2012, "n_questions": 246, "subgroups": {"train": 50, "ood": 48},
        "samples": {"train": 12300, "ood": 1234}}))
    assert "1,234 (the whole OOD split) samples" in intro.run_summary(rd)
    # judge tables: a zero-width interval everywhere means the judge told no pair apart, and the intro says so
    (rd / "judge").mkdir()
    flat = pd.DataFrame({"candidate": ["base", "sft"], "dimension": "overall", "win_rate": 0.5, "ci_low": 0.5,
                         "ci_high": 0.5, "n_used": 22})
    flat.to_csv(rd / "judge" / "win_rates.csv", index=False)
    assert "told none of the pairs apart" in intro.run_summary(rd)
    flat.assign(ci_low=[0.3, 0.4], ci_high=[0.7, 0.6]).to_csv(rd / "judge" / "win_rates.csv", index=False)
    text = intro.run_summary(rd)
    assert "sft: 0.500 [0.400, 0.600] over 22 items" in text and "told none" not in text


def test_reader_checks_catch_each_defect():
    """Each defect of issue 17, planted in a page state, is named; a clean page passes."""
    clean = {"column": 700, "text": "Accuracy 0.925 on 1,234 samples.", "codeShown": 1,
             "tables": [{"width": 650, "scroll": 0, "header": ["n", "acc"], "rows": [["12,300", "0.925"], ["40", "–"]]}],
             "figures": [{"src": "f.png", "natural": 800, "shown": 700}]}
    assert _reader_problems("chapters/x", clean) == []
    bad = {"column": 700, "codeShown": 3, "scripts": 301, "pageOverflow": 120,
           "text": ("| a | b |\n|---|---|\nevaluated 5/40 new samples\n"
                    "soft \tfrac12 p(\text{tie}) and frac12 exttie\nsee /work/main/runs/default/predictions/base_ood.csv"),
           "tables": [{"width": 900, "scroll": 0, "header": ["n", "acc"], "rows": [["12300.000", "nan"]]},
                      {"width": 600, "scroll": 40, "header": ["x"], "rows": [["NaN"]]}],
           "figures": [{"src": "wide.png", "natural": 2000, "shown": 700}]}
    found = "\n".join(_reader_problems("chapters/x", bad))
    for needle in ("900 px wide", "overflows its box by 40", "['nan']", "['NaN']", "['12300.000']",
                   "raw pipe table", "unrendered maths", "progress lines", "/work/main/runs/default",
                   "wide.png is shrunk to 35%", "3 code cells open", "301 script files",
                   "120 px wider than the window"):
        assert needle in found, (needle, found)
