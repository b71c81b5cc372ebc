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
        # A webinar: the hosts' room and the viewers' live stream.
        "join_hosts": "Ведущие подключаются по ссылке: {url}",
        "watch": "Трансляция для зрителей: {url}",
        "hosts_label": "Вебинар, вход для ведущих ({provider})",
        "watch_label": "Трансляция для зрителей ({provider})",
        "update_failed": "Параметры встречи не изменены: {reason} Ссылка прежняя.",
    },
    "en": {
        "join": "Join the meeting: {url}",
        "service": "Service: {provider}",
        "failed": "The video meeting was not created: {reason}",
        "pending": "The meeting link will appear here as soon as {provider} answers.",
        "conference_label": "Video meeting ({provider})",
        "join_hosts": "Hosts join here: {url}",
        "watch": "Watch the live stream: {url}",
        "hosts_label": "Webinar, hosts' link ({provider})",
        "watch_label": "Live stream for viewers ({provider})",
        "update_failed": "The meeting options were not changed: {reason} The link stays.",
    },
}

# Why no conference was made. Short, in plain words, nothing secret.
REASONS = {
    "ru": {
        "invalid_times": "окончание события раньше его начала. Исправьте время и сохраните событие снова.",
        "unknown_provider": "сервис «{detail}» неизвестен. Доступны: {available}.",
        "provider_disabled": "сервис «{detail}» не настроен на сервере. Обратитесь к администратору.",
        "unknown_option": "параметр «{detail}» не подходит для сервиса {provider}. "
        "Подходят: {words}.",
        "no_options": "сервис {provider} не принимает параметров после двоеточия («{detail}»).",
        "no_credentials": "у вас нет доступа к сервису {provider}: администратор ещё не сохранил "
        "ваш токен (meetplugin token {name}).",
        "token_unreadable": "ваш личный токен для сервиса {provider} сохранён, но сервер не может "
        "его прочитать (владелец или права файла). Обратитесь к администратору.",
        "auth": "{provider} не принял учётные данные сервера (код {status}). Обратитесь к администратору.",
        "user_auth": "{provider} не принял ваш личный токен (код {status}). Попросите администратора "
        "сохранить новый (meetplugin token {name}).",
        "not_allowed": "вы не можете создавать встречи в сервисе {provider}: администратор "
        "не включил вас в число тех, кому это разрешено. Обратитесь к администратору.",
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
        "unknown_provider": 'the service "{detail}" is unknown. Available: {available}.',
        "provider_disabled": 'the service "{detail}" is not set up on the server. Ask your administrator.',
        "unknown_option": 'the option "{detail}" does not fit {provider}. It takes: {words}.',
        "no_options": '{provider} takes no options after the colon ("{detail}").',
        "no_credentials": "you have no access to {provider} yet: the administrator has not stored "
        "your token (meetplugin token {name}).",
        "token_unreadable": "your own token for {provider} is stored, but the server cannot read "
        "it (the file's owner or mode). Ask your administrator.",
        "auth": "{provider} did not accept the server's credentials (code {status}). Ask your administrator.",
        "user_auth": "{provider} did not accept your own token (code {status}). Ask your "
        "administrator to store a new one (meetplugin token {name}).",
        "not_allowed": "you cannot create meetings in {provider}: the administrator has not "
        "put you among the people allowed to. Ask your administrator.",
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
    values.setdefault("words", "")
    values.setdefault("name", "")
    table = REASONS[language(lang)]
    return table.get(reason_code, table["rejected"]).format(**values)


# --- invitation letters (imip.py) ------------------------------------------------

MONTHS = {
    "ru": (
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
WEEKDAYS = {
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}

MAIL = {
    "ru": {
        "subject_invite": "Приглашение на онлайн-встречу: {summary}",
        "subject_update": "Изменение онлайн-встречи: {summary}",
        "subject_cancel": "Онлайн-встреча отменена: {summary}",
        "subject_uninvite": "Приглашение отозвано: {summary}",
        "greeting": "Здравствуйте, {name}!",
        "greeting_anonymous": "Здравствуйте!",
        "intro_invite": "{organizer} приглашает вас на онлайн-встречу «{summary}».",
        "intro_update": "Онлайн-встреча «{summary}» изменилась. Ниже — актуальные дата, время "
        "и участники.",
        "intro_cancel": "Онлайн-встреча «{summary}» отменена.",
        "intro_uninvite": "Организатор убрал вас из участников онлайн-встречи «{summary}».",
        "when": "Дата и время",
        "repeats": "Повторяется",
        "organizer": "Организатор",
        "participants": "Участники",
        "more": "… и ещё {count}",
        "join": "Присоединиться к встрече",
        "service": "Сервис видеоконференции",
        "link": "Ссылка",
        "description": "Описание",
        "footer": "Файл event.ics во вложении можно добавить в любой календарь: Outlook, "
        "Яндекс Календарь, Thunderbird, Apple Календарь и другие.",
        "footer_cancel": "Файл event.ics во вложении уберёт встречу из вашего календаря.",
        "all_day": "весь день",
        "floating": "местное время",
        "untitled": "Без названия",
        "DAILY": "ежедневно",
        "WEEKLY": "еженедельно",
        "MONTHLY": "ежемесячно",
        "YEARLY": "ежегодно",
        "OTHER": "да",
    },
    "en": {
        "subject_invite": "Invitation to an online meeting: {summary}",
        "subject_update": "Online meeting changed: {summary}",
        "subject_cancel": "Online meeting cancelled: {summary}",
        "subject_uninvite": "Invitation withdrawn: {summary}",
        "greeting": "Hello {name},",
        "greeting_anonymous": "Hello,",
        "intro_invite": '{organizer} invites you to the online meeting "{summary}".',
        "intro_update": 'The online meeting "{summary}" has changed. The current date, time '
        "and participants are below.",
        "intro_cancel": 'The online meeting "{summary}" is cancelled.',
        "intro_uninvite": 'The organizer removed you from the online meeting "{summary}".',
        "when": "Date and time",
        "repeats": "Repeats",
        "organizer": "Organizer",
        "participants": "Participants",
        "more": "… and {count} more",
        "join": "Join the meeting",
        "service": "Video conferencing service",
        "link": "Link",
        "description": "Description",
        "footer": "The attached event.ics can be added to any calendar: Outlook, Google "
        "Calendar, Thunderbird, Apple Calendar and others.",
        "footer_cancel": "The attached event.ics removes the meeting from your calendar.",
        "all_day": "all day",
        "floating": "local time",
        "untitled": "Untitled",
        "DAILY": "daily",
        "WEEKLY": "weekly",
        "MONTHLY": "monthly",
        "YEARLY": "yearly",
        "OTHER": "yes",
    },
}


def mail_text(lang: str, text_name: str, **values: str) -> str:
    return MAIL[language(lang)][text_name].format(**values)
