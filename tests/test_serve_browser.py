"""The web page of ``aekit serve`` end to end, in headless Chromium (Debian's ``chromium`` package,
driven by Playwright for Python with the system browser: no browser downloads).

Real artefacts, trained for a few steps on digits: a run from ``aekit train`` (recorded data set:
the sample button works), the image index built with it, an AnomalyDetector on the images (a
threshold: score and verdict) and a SeriesAnomalyDetector; the real app under uvicorn on a free
local port. The page loads, an uploaded PNG gets its reconstruction, its score against the
threshold and its nearest neighbours; the sample button draws from the data set; a CSV becomes
the score timeline; an API error shows in the error box; nothing is fetched from elsewhere.

The README's screenshot is taken with the same code, once, not on every run::

    AEKIT_DATA_HOME=../shared/datasets python tests/test_serve_browser.py \\
        --screenshot docs/images/serve_page.png --dataset mnist
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - dev extra not installed
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install aekit[dev])"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
]

K = 8  # the page's default number of neighbours
STEP = np.timedelta64(5, "m")
SERIES_COLUMNS = ["temperature", "pressure"]


# -- artefacts -------------------------------------------------------------------------------------------
def make_series(n: int, seed: int, fault_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two periodic channels (period 40 steps) with noise; optionally a level fault on channel 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.stack([np.sin(2 * np.pi * t / 40), 0.5 * np.cos(2 * np.pi * t / 40) + 1.0], 1)
    x += 0.05 * rng.normal(size=x.shape)
    if fault_at is not None:
        x[fault_at : fault_at + 12, 1] += 2.5
    return x, np.datetime64("2024-01-01T00:00") + t * STEP


def write_series_csv(path: Path, x: np.ndarray, ts: np.ndarray) -> Path:
    with open(path, "w") as f:
        f.write(",".join(["timestamp", *SERIES_COLUMNS]) + "\n")
        for t, row in zip(ts, x):
            f.write(f"{str(t).replace('T', ' ')},{row[0]:.5f},{row[1]:.5f}\n")
    return path


def write_png(path: Path, image: np.ndarray, scale: int = 1) -> Path:
    img = Image.fromarray((np.clip(image[0], 0, 1) * 255).astype(np.uint8))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path


def build_artefacts(root: Path, dataset: str = "digits", *, epochs: int = 3, latent_dim: int = 8,
                    detector_steps: int = 150, detector_model: str = "auto",
                    n_detector: int | None = None) -> SimpleNamespace:
    """A run, its image index, an image AnomalyDetector and a SeriesAnomalyDetector under ``root``."""
    import aekit
    from aekit.cli.main import main as cli_main
    from aekit.data import load_dataset
    from aekit.data.series import as_series
    from aekit.tasks.anomaly.detector import AnomalyDetector
    from aekit.tasks.anomaly.series import SeriesAnomalyDetector

    ds = load_dataset(dataset)
    run, index = root / f"{dataset}-ae", root / f"{dataset}-index"
    assert cli_main(["train", "--model", "dense_ae", "--dataset", dataset, "--epochs", str(epochs),
                     "--latent-dim", str(latent_dim), "--threads", "1", "--seed", "0", "--out", str(run)]) == 0
    assert cli_main(["index", "build", "--model", str(run), "--images", dataset, "--out", str(index)]) == 0

    x = ds.x_train if n_detector is None else ds.x_train[:n_detector]
    det = AnomalyDetector(detector_model, steps=detector_steps, batch_size=64, threads=1).fit(x)
    detector = aekit.save(det, root / f"{dataset}-detector")

    xs, ts = make_series(1200, 0)
    sdet = SeriesAnomalyDetector(window=24, steps=200, batch_size=64, threads=1, hidden=(32, 16), latent_dim=4,
                                 smooth=1, min_event_gap=0).fit(as_series(xs, ts, columns=SERIES_COLUMNS))
    series = aekit.save(sdet, root / "sensor-detector")

    xq, tq = make_series(600, 1, fault_at=400)
    return SimpleNamespace(
        run=Path(run), index=Path(index), detector=Path(detector), series=Path(series),
        png=write_png(root / "query.png", ds.x_test[0], scale=4),  # 4x the model's size: resized
        csv=write_series_csv(root / "sensor.csv", xq, tq),
        text=_write(root / "notes.txt", "not an image\n"),
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the server --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def serving(app):
    """Run ``app`` under uvicorn in a background thread on a free 127.0.0.1 port; yield its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _local(url: str) -> str:
    assert url.startswith("http://127.0.0.1:"), f"tests only talk to their own server, not {url}"
    return url


def get_json(url: str):
    r = httpx.get(_local(url), timeout=30)
    r.raise_for_status()
    return r.json()


def post_file(url: str, path: Path, **fields: str):
    """A multipart upload (the page's way of sending a file), for comparing the page with the API."""
    r = httpx.post(_local(url), data=fields, files={"file": (path.name, path.read_bytes())}, timeout=30)
    r.raise_for_status()
    return r.json()


def launch(p):
    return p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser, url: str, *, width: int = 1100, height: int = 900):
    """A fresh page on ``url`` that records script errors and any request leaving the server."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.script_errors, page.outside = [], []
    page.on("pageerror", lambda e: page.script_errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else page.outside.append(r.url))
    page.goto(url + "/")
    expect(page.locator("#model-select")).to_be_enabled()
    return page


def drop_file(page, selector: str, path: Path) -> None:
    """Drop a file on an element, as a drag from the desktop would."""
    transfer = page.evaluate_handle(
        "([name, bytes]) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'})); return t; }",
        [path.name, list(path.read_bytes())])
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def number(text: str) -> float:
    m = re.search(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)
    assert m, f"no number in {text!r}"
    return float(m.group())


# -- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from aekit.serve import create_app

    art = build_artefacts(tmp_path_factory.mktemp("serve"))
    app = create_app([art.run, art.detector, art.series], index=art.index, compute_threads=1)
    with serving(app) as url:
        art.url = url
        art.models = {m["name"]: m for m in get_json(url + "/v1/models")["models"]}
        yield art


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, served):
    page = open_page(browser, served.url)
    yield page
    assert page.script_errors == [], page.script_errors
    assert page.outside == [], f"the page fetched from outside the server: {page.outside}"
    page.close()


# -- tests -------------------------------------------------------------------------------------------------
def test_page_lists_the_served_models(page, served):
    options = page.locator("#model-select option")
    assert options.evaluate_all("os => os.map(o => o.value)") == list(served.models)
    assert set(served.models) >= {"digits-ae", "digits-detector", "sensor-detector", "digits-index"}
    # the first model is selected and described; its view is the image view
    expect(page.locator("#model-info")).to_contain_text("image 1×8×8")
    expect(page.locator("#image-view")).to_be_visible()
    expect(page.locator("#series-view")).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()


def test_upload_shows_reconstruction_score_and_neighbours(page, served):
    page.select_option("#model-select", "digits-detector")
    expect(page.locator("#sample-button")).to_be_disabled()  # a detector fitted on arrays has no data set
    with page.expect_file_chooser() as chooser:  # the drop zone opens the file picker
        page.click("#drop-zone")
    chooser.value.set_files(str(served.png))

    expect(page.locator("#neighbours .neighbour")).to_have_count(K)
    expect(page.locator("#reconstruction")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(page.locator("#score .verdict")).to_have_text(re.compile("^(anomaly|normal)$"))
    expect(page.locator("#status")).to_contain_text("answered")
    expect(page.locator("#original")).to_have_attribute("src", re.compile("^blob:"))
    expect(page.locator("#original-caption")).to_contain_text("resized to 8×8")
    expect(page.locator("#reconstruction-error")).to_contain_text("reconstruction error")
    # 8x8 pixels shown at 180 px: sharp, not blurred
    for img in ("#original", "#reconstruction"):
        expect(page.locator(img)).to_have_class(re.compile(r"\bpixelated\b"))
        assert page.eval_on_selector(img, "i => getComputedStyle(i).imageRendering") == "pixelated"

    # the score and the threshold are the API's, and the verdict follows them
    want = post_file(served.url + "/v1/score", served.png, model="digits-detector")
    score = number(page.text_content("#score .score-value"))
    threshold = number(page.text_content("#score .threshold-text"))
    assert score == pytest.approx(want["scores"][0], rel=2e-3)
    assert threshold == pytest.approx(want["threshold"], rel=2e-3)
    assert threshold == pytest.approx(served.models["digits-detector"]["threshold"], rel=2e-3)
    verdict = page.text_content("#score .verdict")
    assert verdict == ("anomaly" if want["flags"][0] else "normal")
    assert ("flagged" in page.get_attribute("#score", "class").split()) == want["flags"][0]
    expect(page.locator("#score .gauge")).to_be_visible()
    expect(page.locator("#score .gauge-mark")).to_be_attached()

    # k neighbours, each with its thumbnail, label and distance, nearest first
    assert page.input_value("#k-input") == str(K)
    expect(page.locator("#neighbours-info")).to_contain_text(f"{K} nearest of 1,437")
    cards = page.locator("#neighbours .neighbour")
    srcs = cards.locator("img").evaluate_all("is => is.map(i => i.getAttribute('src'))")
    assert len(srcs) == K and all(s.startswith("data:image/png;base64,") for s in srcs)
    distances = [float(t) for t in cards.locator(".distance").all_text_contents()]
    assert distances == sorted(distances) and all(np.isfinite(distances)) and distances[0] >= 0
    assert all(re.fullmatch(r"label \d", t) for t in cards.locator(".label").all_text_contents())
    hits = post_file(served.url + "/v1/search", served.png, k=str(K))["results"][0]["neighbours"]
    assert [c.get_attribute("data-id") for c in cards.all()] == [str(h["id"]) for h in hits]
    np.testing.assert_allclose(distances, [h["distance"] for h in hits], rtol=2e-3, atol=1e-6)

    # a smaller k asks again
    page.fill("#k-input", "3")
    page.dispatch_event("#k-input", "change")
    expect(cards).to_have_count(3)


def test_sample_button_draws_from_the_data_set(page, served):
    page.select_option("#model-select", "digits-ae")
    expect(page.locator("#sample-note")).to_contain_text("digits")
    page.click("#sample-button")
    caption = page.locator("#original-caption")
    expect(caption).to_contain_text(re.compile(r"sample digits:test:\d+ · label \d"))
    expect(page.locator("#original")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(page.locator("#reconstruction")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(page.locator("#neighbours .neighbour")).to_have_count(K)  # the run built the index: it searches
    expect(page.locator("#score")).to_contain_text("no threshold")  # a plain run scores without one
    first = (caption.text_content(), page.get_attribute("#original", "src"),
             page.get_attribute("#reconstruction", "src"))

    page.click("#sample-button")
    expect(caption).not_to_have_text(first[0])
    expect(page.locator("#status")).to_contain_text("answered")
    assert page.get_attribute("#original", "src") != first[1]
    assert page.get_attribute("#reconstruction", "src") != first[2]
    expect(page.locator("#error")).to_be_hidden()


def test_series_csv_gives_the_score_timeline(page, served):
    page.select_option("#model-select", "sensor-detector")
    expect(page.locator("#series-view")).to_be_visible()
    expect(page.locator("#image-view")).to_be_hidden()
    page.set_input_files("#series-file", str(served.csv))

    timeline = page.locator("#timeline")
    expect(timeline).to_be_visible()
    want = post_file(served.url + "/v1/score", served.csv, model="sensor-detector")
    assert len(want["events"]) >= 1  # the injected fault
    expect(page.locator("#timeline-threshold")).to_be_attached()
    expect(page.locator("#timeline .threshold-label")).to_contain_text("threshold")
    expect(page.locator("#timeline rect.event")).to_have_count(len(want["events"]))
    assert len(page.get_attribute("#timeline .score-path", "d")) > 100
    # the threshold line sits at the threshold's height: inside the plot, above the lowest tick
    y = float(page.get_attribute("#timeline-threshold", "y1"))
    assert 14 <= y <= 220
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(len(want["events"]))
    first = want["events"][0]
    expect(rows.first).to_contain_text(first["start_time"].replace("T", " "))
    expect(page.locator("#series-summary")).to_contain_text("600 time steps")
    expect(page.locator("#series-summary")).to_contain_text(f"{len(want['events'])} event")
    # the fault's peak is far above the threshold: a log scale, and the linear one on request
    log_path = page.get_attribute("#timeline .score-path", "d")
    expect(page.locator("#log-scale")).to_be_checked()
    page.uncheck("#log-scale")
    assert page.get_attribute("#timeline .score-path", "d") != log_path
    expect(page.locator("#timeline rect.event")).to_have_count(len(want["events"]))


def test_api_errors_are_shown(page, served):
    page.select_option("#model-select", "digits-detector")
    page.set_input_files("#file-input", str(served.text))
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"HTTP 4\d\d"))
    expect(error).to_contain_text("image")
    # the next good image, dropped on the drop zone, clears it
    drop_file(page, "#drop-zone", served.png)
    expect(error).to_be_hidden()
    expect(page.locator("#neighbours .neighbour")).to_have_count(K)
    # an image where the series model wants a CSV
    page.select_option("#model-select", "sensor-detector")
    page.set_input_files("#series-file", str(served.png))
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"HTTP 4\d\d"))
    page.click("#error-close")
    expect(error).to_be_hidden()


# -- the README's screenshot ----------------------------------------------------------------------------------
def screenshot(out: Path, dataset: str = "mnist") -> None:
    """Train small artefacts on ``dataset``, serve them, upload a test image, save the page as PNG."""
    import tempfile

    import torch

    from aekit.serve import create_app

    torch.set_num_threads(2)
    big = dataset != "digits"
    with tempfile.TemporaryDirectory() as tmp:
        # a dense detector: the default conv one, trained this briefly on MNIST, reconstructs blanks
        art = build_artefacts(Path(tmp), dataset, epochs=5 if big else 30, latent_dim=16 if big else 8,
                              detector_steps=1500 if big else 600, detector_model="dense",
                              n_detector=20000 if big else None)
        from aekit.data import load_dataset

        query = write_png(Path(tmp) / "digit.png", load_dataset(dataset).x_test[7])
        app = create_app([art.run, art.detector, art.series], index=art.index)
        with serving(app) as url, sync_playwright() as p:
            b = launch(p)
            page = open_page(b, url, width=1100, height=800)
            page.select_option("#model-select", f"{dataset}-detector")
            page.set_input_files("#file-input", str(query))
            expect(page.locator("#neighbours .neighbour")).to_have_count(K)
            expect(page.locator("#score .verdict")).to_be_visible()
            page.wait_for_timeout(300)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            b.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--screenshot", type=Path, required=True, help="where to write the PNG")
    ap.add_argument("--dataset", default="mnist", help="digits or mnist (default)")
    args = ap.parse_args()
    screenshot(args.screenshot, args.dataset)
