"""HTML to PDF for every printable document (superbills, statements, clinical records).

One renderer: a Django template rendered to HTML, then WeasyPrint turns it into PDF. Static files
(the clinic's stylesheet) are read from disk through the staticfiles finders, never fetched over the
network; the one other source is an inline `data:` PNG or JPEG (the clinic's logo, checked when it was
uploaded: documents/logo.py); any other URL is refused, so a document cannot make the server call out.
Paper is A4 or US Letter; the page size goes in through the `paper` context value, which
templates/pdf/base.html uses in its `@page` rule together with page numbers and the running header.
"""

from __future__ import annotations

import base64
import mimetypes
from typing import Any, Literal

from django.contrib.staticfiles import finders
from django.http import HttpRequest
from django.template.loader import render_to_string
from weasyprint.urls import URLFetcher, URLFetcherResponse

Paper = Literal["A4", "Letter"]
PAPERS: tuple[Paper, ...] = ("A4", "Letter")
STATIC_PREFIX = "kapstatic:"
#: Inline images accepted in a document (the clinic's logo): base64 PNG or JPEG only.
INLINE_IMAGES = ("data:image/png;base64,", "data:image/jpeg;base64,")


class _StaticOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """WeasyPrint URL fetcher: only `kapstatic:<path>` files found by the staticfiles finders."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        for prefix in INLINE_IMAGES:
            if url.startswith(prefix):
                body = base64.b64decode(url.removeprefix(prefix), validate=True)
                mime = prefix.removeprefix("data:").split(";")[0]
                return URLFetcherResponse(url, body=body, headers={"Content-Type": mime})
        if not url.startswith(STATIC_PREFIX):
            raise ValueError("PDF documents may only include the application's own static files")
        path = finders.find(url.removeprefix(STATIC_PREFIX))
        if not path or isinstance(path, list):
            raise ValueError("static file not found")
        with open(path, "rb") as fh:
            data = fh.read()
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=data, headers={"Content-Type": mime})


def render_pdf(
    template_name: str,
    context: dict[str, Any],
    *,
    request: HttpRequest | None = None,
    paper: Paper = "A4",
) -> bytes:
    """Render `template_name` (which should extend pdf/base.html) to PDF bytes."""
    from weasyprint import HTML

    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {PAPERS}")
    html = render_to_string(template_name, {**context, "paper": paper}, request=request)
    pdf = HTML(string=html, url_fetcher=_StaticOnlyFetcher(), base_url=STATIC_PREFIX).write_pdf()
    assert pdf is not None
    return bytes(pdf)
