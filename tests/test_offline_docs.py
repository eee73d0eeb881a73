"""The API's documentation pages work offline: Swagger UI and ReDoc load their assets from
the server itself, checked in Debian's chromium with every other address blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def api_url(docs_config, serve_app):
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app

    return serve_app(create_app(build_assistant(docs_config)))


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".opblock"), ("/redoc", ".redoc-wrap")])
def test_docs_render_with_the_network_blocked(api_url, path, rendered):
    from support.browser import ARGS

    outside: list[str] = []  # resource types of the requests to other addresses

    def only_local(route) -> None:
        if route.request.url.startswith(api_url):
            route.continue_()
        else:
            outside.append(route.request.resource_type)
            route.abort()

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.goto(api_url + path)
            page.wait_for_selector(rendered, timeout=60_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert "/ask" in text and "/search" in text
    # Nothing the page needs comes from outside (ReDoc's footer logo is an image it links).
    assert not set(outside) & {"script", "stylesheet", "fetch", "xhr", "font"}
