"""The documentation: every example in docs/*.md runs, and prints what the page says; the site
builds offline without warnings (``mkdocs build --strict``), has no broken internal link or
anchor and loads nothing from the network; a headless Chromium loads the index and an engine
page and finds their navigation links.

Examples: every ```python block runs (the blocks of one page share a namespace, in a temporary
directory); a ```text block right after it is the output it must print. In ```console blocks
each ``$ farfield ...`` line runs the command line in-process, and the lines up to the next
``$`` are its standard output (or, for a line ``farfield: error: ...``, its one-line
error). ```sh blocks (set-up commands such as ``make test``) are not run.
"""

from __future__ import annotations

import contextlib
import html.parser
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
#: pages whose examples take more than ~3 s together
SLOW_PAGES: set[str] = {"dask.md"}  # a LocalCluster starts and stops (~4 s on 2 busy cores)


@dataclass
class Example:
    kind: str  # "python" or "console"
    code: str
    expected: str | None
    line: int


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        lang, body = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if lang == "python":
            expected = None
            if i + 1 < len(fences):
                nxt = fences[i + 1]
                if nxt.group(1) == "text" and not text[m.end() : nxt.start()].strip():
                    expected = nxt.group(2)
            out.append(Example("python", body, expected, line))
        elif lang == "console":
            out.append(Example("console", body, None, line))
    return out


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def run_console(block: str, where: str) -> None:
    from farfield import cli

    commands: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    assert commands, f"{where}: a console block without a '$ ' command"
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[0] == "farfield", f"{where}: only farfield commands run here: {command}"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = cli.main(argv[1:])
        errors = [line for line in expected if line.startswith("farfield: error:")]
        if errors:  # an example of an error: that line on stderr, a non-zero status
            assert status != 0, f"{where}: `{command}` did not fail"
            assert normalise(stderr.getvalue()) == normalise("\n".join(errors)), (
                f"{where}: `{command}` reported\n{stderr.getvalue()}"
            )
            continue
        assert status == 0, f"{where}: `{command}` failed: {stderr.getvalue()}"
        if any(line.strip() for line in expected):
            assert normalise(stdout.getvalue()) == normalise("\n".join(expected)), (
                f"{where}: `{command}` printed\n{stdout.getvalue()}"
            )


def page_params() -> list[object]:
    params: list[object] = []
    for page in PAGES:
        if not examples(page):
            continue
        marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
        params.append(pytest.param(page, id=page.name, marks=marks))
    return params


@pytest.mark.parametrize("page", page_params())
def test_examples_run_and_print_what_the_page_says(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ase")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for example in examples(page):
        where = f"{page.name}:{example.line}"
        if example.kind == "console":
            run_console(example.code, where)
            continue
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(compile(example.code, where, "exec"), namespace)  # noqa: S102
        if example.expected is not None:
            assert normalise(stdout.getvalue()) == normalise(example.expected), (
                f"{where} printed\n{stdout.getvalue()}"
            )


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert f" {page.name}" in config, f"{page.name} is missing from mkdocs.yml's nav"


# --- the built site --------------------------------------------------------------------------

_MISSING = [
    m for m in ("mkdocs", "material", "mkdocstrings", "pymdownx") if not importlib.util.find_spec(m)
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _MISSING:
        pytest.skip(
            f"the documentation tools are not installed ({', '.join(_MISSING)} missing): "
            "pip install --group docs, or make docs"
        )
    out = tmp_path_factory.mktemp("site")
    p = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml"]
        + ["-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, f"mkdocs build --strict failed:\n{p.stdout}\n{p.stderr}"
    return out


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("id", "name"):
            if a.get(name) and (name == "id" or tag == "a"):
                self.ids.add(str(a[name]))
        for name in ("href", "src"):
            if a.get(name):
                self.links.append((tag, str(a[name])))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _target(page: Path, url: str, site: Path) -> tuple[Path, str] | None:
    """The file and fragment an internal link points to (None for external links)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path = urllib.parse.unquote(parts.path)
    target = page if not path else (page.parent / path).resolve()
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target, urllib.parse.unquote(parts.fragment)


@pytest.mark.slow
def test_site_has_no_broken_internal_link_and_fetches_nothing(site: Path) -> None:
    pages = {p.resolve(): _parse(p) for p in site.rglob("*.html")}
    assert site.joinpath("index.html").resolve() in pages
    for name in ("getting-started", "coulomb", "lode", "qeq", "descriptors", "cli", "api"):
        assert (site / f"{name}.html").exists(), name
    broken = []
    for page, parsed in pages.items():
        if page.name == "404.html":  # links from the server root, for a web server's 404 page
            continue
        for tag, url in parsed.links:
            if url.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = _target(page, url, site)
            if target is None:
                # links to the web are fine; resources fetched from it are not
                assert tag == "a", f"{page.name} loads {url} from the network"
                continue
            path, fragment = target
            if not path.exists():
                broken.append(f"{page.relative_to(site.resolve())}: {url}")
            elif fragment and path.suffix == ".html" and fragment not in pages[path].ids:
                broken.append(f"{page.relative_to(site.resolve())}: {url} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(sorted(set(broken)))
    # the API reference is generated from the docstrings
    api = (site / "api.html").read_text(encoding="utf-8")
    for name in ("Coulomb", "LodeSphericalExpansion", "QEq", "TripletFeatures", "accuracy"):
        assert name in api


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _dump_dom(browser: str, page: Path) -> str:
    p = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        + ["--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.slow
def test_headless_browser_loads_pages_and_navigation(site: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no headless browser: install Chromium (Debian: apt-get install chromium); "
            "make test does not install it"
        )
    for name, title in (("index", "farfield documentation"), ("coulomb", "Ewald, PME")):
        page = site / f"{name}.html"
        dom = _dump_dom(browser, page)
        assert "<h1" in dom and title in dom, f"{name}.html did not render its title"
        parsed = _Links()
        parsed.feed(dom)
        nav = [
            url
            for url in re.findall(r'<a[^>]*class="md-nav__link[^"]*"[^>]*href="([^"]+)"', dom)
            + re.findall(r'<a[^>]*href="([^"]+)"[^>]*class="md-nav__link[^"]*"', dom)
        ]
        assert len(set(nav)) >= 10, f"{name}.html: navigation not found ({nav})"
        for url in nav:
            target = _target(page, url, site)
            assert target is not None and target[0].exists(), f"{name}.html: nav link {url}"
