"""The API's reference pages render in a browser from this server alone."""

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("path", "rendered"), [("/api/redoc/", "h1:has-text('Warrant API')"), ("/api/docs/", ".swagger-ui")]
)
def test_the_api_reference_renders_without_asking_another_site(page, live_server, path, rendered):
    own = urlsplit(live_server.url).netloc
    elsewhere = []  # answers from other sites (ReDoc's bundle names its maker's logo; the page's policy blocks it)
    page.on("response", lambda r: urlsplit(r.url).netloc not in ("", own) and elsewhere.append(r.url))
    page.goto(path)
    page.wait_for_selector(rendered, timeout=60_000)
    assert "Warrant API" in page.content()
    assert elsewhere == []
