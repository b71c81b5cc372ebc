"""E-mail addresses and header text, checked before they go near a letter (pure).

An address a letter goes to must be a plain `local@domain` (ASCII local part,
an internationalised domain turned into its ASCII form). Anything else — a
`mailto:` with a display name, spaces, line breaks, several `@` — is refused
rather than repaired, so nothing typed into an event can add a recipient or a
header.
"""

from __future__ import annotations

import unicodedata
import urllib.parse
from collections.abc import Iterable, Mapping

_LOCAL = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~."
)
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# Line breaks and control characters become spaces; format characters (bidi
# overrides, zero-width marks) go, so a name cannot reorder what a reader sees.
_SPACE = {"Cc": " ", "Zl": " ", "Zp": " ", "Cf": ""}


def normalize(value: str) -> str | None:
    """`value` (an address or a `mailto:` URI) as a lower-case addr-spec; None if unusable."""
    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = urllib.parse.unquote(text[7:])
    if not text or len(text) > 254:
        return None
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return None
    if any(c not in _LOCAL for c in local) or local[0] == "." or local[-1] == "." or ".." in local:
        return None
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        return None
    return f"{local}@{ascii_domain}".lower()


def _ascii_domain(domain: str) -> str | None:
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return None
    for label in labels:
        if (
            not 0 < len(label) <= 63
            or label[0] == "-"
            or label[-1] == "-"
            or any(c not in _LABEL for c in label)
        ):
            return None
    return ascii_domain


def one_line(text: str, limit: int = 200) -> str:
    """Text safe for one header line: control characters and line breaks become spaces."""
    cleaned = "".join(_SPACE.get(unicodedata.category(c), c) for c in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def login_candidates(
    addr: str, explicit: Mapping[str, Iterable[str]], templates: Iterable[str]
) -> list[str]:
    """Logins whose addresses may include `addr`: the reverse of the owner addresses.

    `explicit`: login -> its listed addresses; `templates`: e.g. `{user}@example.com`.
    Candidates only, in order (explicit, templates, the address itself as a
    login): the caller keeps those whose own address list really holds `addr`.
    """
    wanted = normalize(addr)
    if wanted is None:
        return []
    found: list[str] = []

    def add(login: str) -> None:
        if login and login not in found:
            found.append(login)

    for login, listed in explicit.items():
        if any(normalize(a) == wanted for a in listed):
            add(login)
    for template in templates:
        parts = template.strip().lower().split("{user}")
        if len(parts) != 2:
            continue
        head, tail = parts
        if (
            len(wanted) > len(head) + len(tail)
            and wanted.startswith(head)
            and wanted.endswith(tail)
        ):
            login = wanted[len(head) : len(wanted) - len(tail)]
            if "/" not in login and "@" not in login and login.strip(".") == login:
                add(login)
    add(wanted)  # a login that is an address is an address of its own
    return found
