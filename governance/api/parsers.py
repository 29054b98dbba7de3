"""Request body parsers of the REST API.

``JSONParser`` is DRF's JSON parser with a bound on nesting: a body nested deeper than
``MAX_JSON_DEPTH`` objects and arrays is a 400 ``{"detail": "JSON nests too deeply …"}``
instead of a recursion failure deep in the decoder (a 500). No Warrant payload nests more
than a few levels; the bound guards the server against deliberately deep documents
(OWASP API Security Top 10 2023 API4, unrestricted resource consumption).
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: Deepest nesting of JSON objects and arrays accepted in a request body.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(value, limit: int) -> bool:
    """True when ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels deep.

    Walks the document iteratively, so any depth the decoder produced can be measured.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    """``application/json`` bodies, refusing nesting deeper than ``MAX_JSON_DEPTH`` with a 400.

    Raises ``ParseError`` (400) for malformed JSON (as DRF does) and for a document nested too
    deeply, whether the decoder itself gives up (``RecursionError``) or the decoded document
    exceeds the bound.
    """

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise ParseError(self.too_deep_detail()) from None
        if json_depth_exceeds(data, self.max_depth):
            raise ParseError(self.too_deep_detail())
        return data

    def too_deep_detail(self) -> str:
        """The 400 message, naming the bound."""
        return f"JSON nests too deeply: at most {self.max_depth} levels of objects and arrays."
