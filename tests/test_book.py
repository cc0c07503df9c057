"""End to end: every notebook runs in the smoke profile, the site builds, and real Chromium renders it.

The book is built from a copy of ``book/`` in a temporary folder, with run records and executed
notebooks in a temporary build folder, so the checkout is left as it was - except the screenshot of
the status page, which is saved to ``build/screenshots/status.png`` for people to look at.
"""

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ovnb import book, env, runner

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OVNB_BUILD_DIR", str(tmp / "build"))
        runs = runner.run_notebooks([p.stem for p in runner.discover()], "smoke", progress=False, timeout=600)
        book_copy = tmp / "book"
        shutil.copytree(ROOT / "book", book_copy, ignore=shutil.ignore_patterns("_build", "_generated", "notebooks"))
        code = book.build("smoke", book=book_copy, strict=True)
    return {"runs": runs, "code": code, "html": book_copy / "_build" / "html"}


def test_every_notebook_runs_top_to_bottom_in_smoke(site):
    failed = [f"{r.notebook}: {r.error}" for r in site["runs"] if r.status != "ok"]
    assert not failed, "\n".join(failed)
    assert {r.notebook for r in site["runs"]} == {p.stem for p in runner.discover()}


def _toc_pages():
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            pages.append(chapter["file"])
            pages += [section["file"] for section in chapter.get("sections", [])]
    return pages


def test_the_site_builds_with_warnings_as_errors(site):
    assert site["code"] == 0
    for page in _toc_pages():
        assert (site["html"] / f"{page}.html").is_file(), f"{page}.html missing"


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("Chromium is required in CI (Debian package `chromium`; .ci/run installs it)")
    pytest.skip("Chromium is not installed (Debian package `chromium`)")


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site["html"]))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _browse(chromium, url, tmp_path, *extra):
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           *extra, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc


@pytest.mark.parametrize("page", _toc_pages())
def test_every_page_renders_in_a_real_browser(site, server, page, tmp_path):
    chromium = _chromium()
    proc = _browse(chromium, f"{server}/{page}.html", tmp_path, "--dump-dom")
    dom = proc.stdout
    assert proc.returncode == 0 and "<h1" in dom, f"{page}: nothing rendered\n{proc.stderr[-2000:]}"
    assert "Traceback (most recent call last)" not in dom, f"{page}: a cell error shows"
    assert "output traceback" not in dom and "stderr" not in dom.split("<article", 1)[-1].split("</article>")[0]
    if page.startswith("notebooks/"):
        assert "cell_output" in dom, f"{page}: an executed notebook shows outputs"
        assert "<img" in dom, f"{page}: the notebook's figure is missing"
    if page == "_generated/status":
        assert dom.count('class="ovnb-paper-table"') == 32, "one table per paper table (5 + 10 + 8 + 9)"
        assert "<img" in dom and "status.png" in dom
    if page == "_generated/benchmark":
        assert "ovnb-benchmark" in dom and "Profile <code" in dom, "the smoke run's benchmark tables"
    if page == "_generated/environment":
        assert "00_about_this_book" in dom and "wall time" in dom


def test_screenshot_of_the_status_page(site, server, tmp_path):
    chromium = _chromium()
    out = env.project_root() / "build" / "screenshots" / "status.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    proc = _browse(chromium, f"{server}/_generated/status.html", tmp_path, f"--screenshot={out}",
                   "--window-size=1280,1600")
    assert proc.returncode == 0 and out.is_file() and out.stat().st_size > 20_000, proc.stderr[-2000:]
