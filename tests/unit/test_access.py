"""The providers' allow-lists: names, @groups, the htgroup file and where it comes from."""

from __future__ import annotations

import os

from radicale_meetplugin import bootstrap, providers
from radicale_meetplugin.providers.access import GroupFile, allowed, no_groups, parse_htgroup


def test_htgroup_lines_map_members_to_groups():
    text = "# comment\nmanagers: alice bob\n\nstaff:bob  carol\nbroken line\n: nobody\n"
    assert parse_htgroup(text) == {
        "alice": frozenset({"managers"}),
        "bob": frozenset({"managers", "staff"}),
        "carol": frozenset({"staff"}),
    }


def test_an_empty_list_lets_everyone_a_list_only_its_names_and_groups():
    groups = {"alice": frozenset({"managers"})}.get
    lookup = lambda user: groups(user, frozenset())  # noqa: E731
    assert allowed((), "anyone", no_groups)
    assert allowed(("bob", "@managers"), "bob", lookup)
    assert allowed(("bob", "@managers"), "alice", lookup)
    assert not allowed(("bob", "@managers"), "carol", lookup)
    assert not allowed(("@",), "alice", lookup)
    assert not allowed(("Bob",), "bob", lookup)  # Radicale's user names keep their case


def test_the_group_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "groups"
    path.write_text("managers: alice\n")
    groups = GroupFile(str(path))
    assert groups("alice") == {"managers"} and groups("bob") == frozenset()
    path.write_text("managers: alice bob\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within the clock's resolution
    assert groups("bob") == {"managers"}
    path.unlink()
    assert groups("alice") == frozenset()  # a missing file: nobody is in a group


def _settings(tmp_path, text):
    conf = tmp_path / "meetplugin.conf"
    conf.write_text(text)
    return providers.load_settings(str(conf))[0]


def test_our_groups_file_wins_over_radicales_and_none_means_names_only(tmp_path, caplog):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.write_text("managers: bob\n")
    theirs.write_text("managers: alice\n")
    settings = _settings(
        tmp_path, f"[meetplugin]\ngroups_file = {ours}\n[provider:jitsi]\nusers = @managers\n"
    )
    assert settings.providers["jitsi"]["users"] == ("@managers",)
    assert bootstrap.build_groups(settings, str(theirs))("bob") == {"managers"}
    settings = _settings(tmp_path, "[provider:jitsi]\nusers = @managers\n")
    assert bootstrap.build_groups(settings, str(theirs))("alice") == {"managers"}
    assert bootstrap.build_groups(settings, "") is no_groups
    assert "no groups are known" in caplog.text
