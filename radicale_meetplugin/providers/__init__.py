"""Provider registry: adding a provider is one module plus one line here.

A provider module has ``OPTIONS`` (its config schema), a ``Provider`` subclass
and ``build(options, ctx)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from radicale_meetplugin.config import Schema
from radicale_meetplugin.providers import jitsi, telemost, trueconf, videomost
from radicale_meetplugin.providers.base import BuildContext, Capabilities, Provider, ProviderError

MODULES: Mapping[str, ModuleType] = {
    "jitsi": jitsi,
    "telemost": telemost,
    "trueconf": trueconf,
    "videomost": videomost,
}

CLASSES: Mapping[str, type[Provider]] = {
    "jitsi": jitsi.Jitsi,
    "telemost": telemost.Telemost,
    "trueconf": trueconf.TrueConf,
    "videomost": videomost.Videomost,
}


def schemas() -> Mapping[str, Schema]:
    return {name: module.OPTIONS for name, module in MODULES.items()}


__all__ = [
    "BuildContext",
    "Capabilities",
    "CLASSES",
    "MODULES",
    "Provider",
    "ProviderError",
    "schemas",
]
