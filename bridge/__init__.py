"""The CalDAV bridge: the plugin's behaviour for calendars on any CalDAV server.

It follows calendars from outside, over CalDAV only (RFC 6578 sync, or ETag
listings), runs the same engine as the Radicale plugin on each changed event
and writes the result back with ``If-Match``. Modules, by concern:

- ``config``: the bridge's INI file (accounts, intervals), schema as data;
- ``follow``: pure — previous state + a listing or sync delta -> what to do;
- ``caldav_client``: the CalDAV requests, behind one small class;
- ``state``: sqlite beside the engine's records (tokens, ETags per href);
- ``writeback``: one event through the engine, written back safely;
- ``runner``: one cycle over all accounts, the daemon loop, SIGTERM;
- ``cli``: the ``meetplugin-bridge`` command.
"""

__version__ = "0.1.0"
