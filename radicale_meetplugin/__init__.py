"""radicale-meetplugin: video conferences that appear by themselves in calendar events.

Radicale loads ``radicale_meetplugin.Storage`` (``[storage] type = radicale_meetplugin``).
The pure parts (detect, plan, rewrite) import neither Radicale nor the network,
so the Radicale adapter is only imported when Radicale asks for it.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Storage":
        from radicale_meetplugin.radicale.storage import Storage

        return Storage
    raise AttributeError(name)
