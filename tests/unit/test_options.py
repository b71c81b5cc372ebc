"""Provider options per event, from Thunderbird's plain fields: "телемост:все", "#telemost:off"."""

from __future__ import annotations

import pytest
from harness import event
from test_detect import GRAMMAR

from radicale_meetplugin.core import ical
from radicale_meetplugin.core.detect import detect


@pytest.mark.parametrize(
    "kw,words",
    [
        (dict(location="телемост:все"), ("все",)),
        (dict(location="Переговорная 5; telemost:off+cohosts"), ("off", "cohosts")),
        (dict(summary="Планёрка #telemost:all+cohosts"), ("all", "cohosts")),
        (dict(location="telemost"), ()),
    ],
)
def test_option_words_are_read_after_the_keyword(kw, words):
    found = detect(ical.parse(event("u@t", **kw)), GRAMMAR)
    assert (found.provider, found.option_words) == ("telemost", words)
