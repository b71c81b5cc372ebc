"""Pasted meeting links: recognised by masks, a CONFERENCE property and nothing else."""

from __future__ import annotations

import pytest
from harness import event

from radicale_meetplugin.core import ical, links

LINKS = {
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=x": "Microsoft Teams",
    "https://us02web.zoom.us/j/81234567890?pwd=abc": "Zoom",
    "https://company.webex.com/meet/ivanov": "Cisco Webex",
    "https://join.me/ivanov": "Join.Me",
    "https://www.anymeeting.com/ivanov": "AnyMeeting",
    "https://global.gotomeeting.com/join/123456789": "GoToMeeting",
    "https://meet.goto.com/123456789": "GoToMeeting",
    "https://meet.google.com/abc-defg-hij": "Google Meet",
    "https://telemost.yandex.ru/j/12345678901234": "Яндекс Телемост",
    "https://telemost.360.yandex.ru/j/12345678901234": "Яндекс Телемост",
    "https://vcs.example.ru/c/planning_room": "TrueConf",
    "https://im2.videomost.com/service/join/?confid=bc7a050ce0f25db26dad32c1afff5c74&confpass=1240": "Videomost",
    "https://meet.jit.si/OurStandup": "Jitsi Meet",
    "https://cloud.example.ru/call/ab12cd34": "Nextcloud Talk",
    "https://example.org/nextcloud/index.php/call/k3x9mq2p": "Nextcloud Talk",
}


@pytest.mark.parametrize("url,name", LINKS.items())
def test_known_services(url, name):
    assert list(links.find(f"Подключайтесь: {url} (пароль в чате)", links.DEFAULT_MASKS)) == [
        (name, url)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "https://example.org/j/1",
        "zoom.us/j/1 without scheme",
        "https://meet.google.com/",
        "mailto:a@zoom.us",
        "https://example.org/call/",
        "https://example.org/call/a_b",
    ],
)
def test_not_meeting_links(text):
    assert list(links.find(text, links.DEFAULT_MASKS)) == []


def test_admin_masks_come_first():
    masks = links.masks_from_config({"Zoom Our Company": r"https://ourcompany\.zoom\.us/j/\S+"})
    assert list(links.find("https://ourcompany.zoom.us/j/1", masks)) == [
        ("Zoom Our Company", "https://ourcompany.zoom.us/j/1")
    ]
    with pytest.raises(ValueError):
        links.masks_from_config({"bad": "(unclosed"})


def test_conference_added_kept_and_removed_with_the_link():
    cal = ical.parse(
        event(
            "u@t",
            location="https://meet.google.com/abc-defg-hij",
            extra="CONFERENCE;VALUE=URI;FEATURE=PHONE:tel:+74950000000",
        )
    )
    links.mark_conferences(cal, links.pasted(cal, links.DEFAULT_MASKS))
    once = ical.to_text(cal)
    links.mark_conferences(cal, links.pasted(cal, links.DEFAULT_MASKS))
    assert ical.to_text(cal) == once  # a fixed point
    values = ical.values_of(ical.vevents(cal)[0], "CONFERENCE")
    assert sorted(str(v) for v in values) == [
        "https://meet.google.com/abc-defg-hij",
        "tel:+74950000000",
    ]
    ical.set_text(ical.vevents(cal)[0], "LOCATION", "Офис")
    links.mark_conferences(cal, links.pasted(cal, links.DEFAULT_MASKS))
    assert [str(v) for v in ical.values_of(ical.vevents(cal)[0], "CONFERENCE")] == [
        "tel:+74950000000"
    ]  # ours went with the link; the person's stays


def test_a_link_ends_where_url_characters_end():
    # Hypothesis found this: backslashes glued to a link broke the fixed point.
    text = "Встреча пройдёт по ссылке: https://meet.jit.si/x\\\\"
    assert list(links.find(text, links.DEFAULT_MASKS)) == [("Jitsi Meet", "https://meet.jit.si/x")]
