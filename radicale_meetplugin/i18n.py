"""What the event shows people, in Russian (default) and English."""

from __future__ import annotations

LANGUAGES = ("ru", "en")

# The description block: a start line, our lines, an end line. The parser knows
# the start lines of every language, so switching the language keeps working.
BLOCK_START = {"ru": "=== Видеовстреча ===", "en": "=== Video meeting ==="}
BLOCK_END = "==="

TEXT = {
    "ru": {
        "join": "Встреча пройдёт по ссылке: {url}",
        "service": "Сервис: {provider}",
        "failed": "Видеовстреча не создана: {reason}",
        "pending": "Ссылка на встречу появится здесь, как только ответит {provider}.",
        "conference_label": "Видеовстреча ({provider})",
    },
    "en": {
        "join": "Join the meeting: {url}",
        "service": "Service: {provider}",
        "failed": "The video meeting was not created: {reason}",
        "pending": "The meeting link will appear here as soon as {provider} answers.",
        "conference_label": "Video meeting ({provider})",
    },
}

# Why no conference was made. Short, in plain words, nothing secret.
REASONS = {
    "ru": {
        "invalid_times": "окончание события раньше его начала. Исправьте время и сохраните событие снова.",
        "unknown_provider": "сервис «{detail}» неизвестен. Доступны: {available}.",
        "provider_disabled": "сервис «{detail}» не настроен на сервере. Обратитесь к администратору.",
        "unknown_option": "параметр «{detail}» не подходит для сервиса {provider}. "
                          "Для Телемоста: внешние, все, выкл, соорганизаторы.",
        "no_credentials": "у вас нет доступа к сервису {provider}: администратор ещё не сохранил "
                          "ваш токен (meetplugin telemost-token).",
        "auth": "{provider} не принял учётные данные сервера (код {status}). Обратитесь к администратору.",
        "org_required": "{provider} разрешает создавать встречи только аккаунтам организаций "
                        "(Яндекс 360 для бизнеса). Обратитесь к администратору.",
        "payment_required": "{provider}: для этой возможности нужен платный тариф.",
        "forbidden": "{provider} запретил создание встречи (код {status}). Обратитесь к администратору.",
        "rejected": "{provider} отклонил запрос (код {status}{code}).",
        "unavailable": "{provider} сейчас недоступен. Сохраните событие ещё раз позже.",
        "rate_limited": "{provider} просит повторить позже (слишком много запросов).",
    },
    "en": {
        "invalid_times": "the event ends before it starts. Fix the time and save the event again.",
        "unknown_provider": "the service \"{detail}\" is unknown. Available: {available}.",
        "provider_disabled": "the service \"{detail}\" is not set up on the server. Ask your administrator.",
        "unknown_option": "the option \"{detail}\" does not fit {provider}. "
                          "For Telemost: external, all, off, cohosts.",
        "no_credentials": "you have no access to {provider} yet: the administrator has not stored "
                          "your token (meetplugin telemost-token).",
        "auth": "{provider} did not accept the server's credentials (code {status}). Ask your administrator.",
        "org_required": "{provider} lets only organisation accounts (Yandex 360 for Business) "
                        "create meetings. Ask your administrator.",
        "payment_required": "{provider}: this feature needs a paid plan.",
        "forbidden": "{provider} refused to create the meeting (code {status}). Ask your administrator.",
        "rejected": "{provider} rejected the request (code {status}{code}).",
        "unavailable": "{provider} is unavailable right now. Save the event again later.",
        "rate_limited": "{provider} asks to try again later (too many requests).",
    },
}


def language(lang: str) -> str:
    return lang if lang in LANGUAGES else "ru"


def text(lang: str, name: str, **values: str) -> str:
    return TEXT[language(lang)][name].format(**values)


def reason(lang: str, reason_code: str, **values: str) -> str:
    values.setdefault("detail", "")
    values.setdefault("available", "")
    values.setdefault("provider", "")
    values.setdefault("status", "")
    values.setdefault("code", "")
    table = REASONS[language(lang)]
    return table.get(reason_code, table["rejected"]).format(**values)
