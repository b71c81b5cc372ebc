"""The provider plugin family: built-in names loaded lazily, third-party ones by import path.

Like Radicale's own plugin families (``radicale.auth``): a built-in provider is a
module ``radicale_meetplugin.providers.<name>``; a third-party one is any module
named in its config section, ``[provider:NAME] module = mypackage.myprovider``.
Either exports ``PLUGIN``, a ``ProviderPlugin`` (see base.py and
docs/providers/writing-a-provider.md). Adding a built-in provider is one module
plus its name in ``BUILTIN``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from radicale_meetplugin import config
from radicale_meetplugin.config import ConfigError, Schema, Settings
from radicale_meetplugin.core import i18n
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    OptionWord,
    Provider,
    ProviderError,
    ProviderPlugin,
    UserCredentials,
)

BUILTIN = ("jitsi", "talk", "teams", "telemost", "trueconf", "videomost", "zoom")
_PACKAGE = "radicale_meetplugin.providers"


def load(name: str, module: str = "") -> ProviderPlugin:
    """The plugin of a built-in provider, or of the module at import path `module`."""
    path = module.strip() or (f"{_PACKAGE}.{name}" if name in BUILTIN else "")
    where = f"[provider:{name}]"
    if not path:
        raise ConfigError(f"{where} is not a built-in provider: set module = <import path>")
    try:
        imported = importlib.import_module(path)
    except Exception as e:  # ImportError, or the module's own error at import time
        raise ConfigError(
            f"{where} module = {path}: cannot import it: {type(e).__name__}: {e}"
        ) from None
    plugin = getattr(imported, "PLUGIN", None)
    if not isinstance(plugin, ProviderPlugin):
        raise ConfigError(f"{where} module = {path}: it has no PLUGIN = ProviderPlugin(...)")
    if plugin.name != name:
        raise ConfigError(
            f"{where} module = {path}: its provider is named {plugin.name!r}; "
            f"use [provider:{plugin.name}]"
        )
    return plugin


def load_all(modules: Mapping[str, str] | None = None) -> dict[str, ProviderPlugin]:
    """Every built-in provider, plus each configured section that names a module.

    `modules`: section name -> its ``module`` option ("" when it has none).
    Sections without a module that are not built-in are left to the config
    check (an unknown section).
    """
    modules = dict(modules or {})
    plugins = {name: load(name, modules.get(name, "")) for name in BUILTIN}
    for name, module in modules.items():
        if name not in plugins and module.strip():
            plugins[name] = load(name, module)
    return plugins


def schemas() -> Mapping[str, Schema]:
    """The config schemas of the built-in providers."""
    return {name: plugin.options for name, plugin in load_all().items()}


def load_settings(path: str | None) -> tuple[Settings, dict[str, ProviderPlugin]]:
    """The plugin config and the providers it names (built-in and third-party)."""
    plugins: dict[str, ProviderPlugin] = {}

    def resolve(modules: Mapping[str, str]) -> Mapping[str, Schema]:
        plugins.update(load_all(modules))
        return {name: plugin.options for name, plugin in plugins.items()}

    return config.load(path, resolve), plugins


def reason_text(
    lang: str,
    code: str,
    plugins: Mapping[str, ProviderPlugin],
    provider: str = "",
    detail: str = "",
    error: ProviderError | None = None,
    enabled: Iterable[str] = (),
) -> str:
    """Why there is no conference, in the event's language, with display names only."""
    plugin = plugins.get(provider)
    label = plugin.label(lang) if plugin else provider
    if code == "provider_disabled" and detail in plugins:
        detail = plugins[detail].label(lang)
    if code == "unknown_option" and plugin is not None and not plugin.option_words:
        code = "no_options"
    return i18n.reason(
        lang,
        code,
        provider=label,
        name=provider,
        detail=detail,
        words=plugin.words_help(lang) if plugin else "",
        available=", ".join(
            f"{plugins[n].label(lang)} ({n})" if n in plugins else n for n in sorted(enabled)
        ),
        status=str(error.status) if error and error.status else "-",
        code=f", {error.provider_code}" if error and error.provider_code else "",
    )


__all__ = [
    "BUILTIN",
    "BuildContext",
    "Capabilities",
    "OptionWord",
    "Provider",
    "ProviderError",
    "ProviderPlugin",
    "UserCredentials",
    "load",
    "load_all",
    "load_settings",
    "reason_text",
    "schemas",
]
