"""The one reach into watchfiles' private API: ``watchfiles._rust_notify.RustNotify``.

Why not the public ``watchfiles.watch()``: it creates its notifier lazily, inside the
first iteration of the generator, on the thread that iterates it, and says nothing when
the watch is armed. ``sources.files`` promises that a file written right after
``start()`` returns is seen, so it must arm the OS watcher before subscribe returns;
only the notifier itself allows that. Everything else (overflow, new folders) is done
by ``_files`` with public calls: watchfiles reports no inotify overflow (its Rust side
drops notify's path-less ``Rescan`` events), which is why ``_files`` rescans.

:func:`check_watchfiles` pins the private API (the constructor's parameters, the
change codes) against the installed watchfiles; it runs once per process before the
first notifier is opened, and ``tests/sources/test_files_new_folders.py`` runs it so a
watchfiles release that moves it fails the test suite, loudly.
"""

from __future__ import annotations

from typing import Any, Protocol

from portico_rx.errors import require

__all__ = ["ADDED", "DELETED", "MODIFIED", "Notifier", "check_watchfiles", "open_notifier"]

ADDED, MODIFIED, DELETED = 1, 2, 3
"""watchfiles' change codes (``watchfiles.Change``), as ``RustNotify.watch`` returns them."""

_CONSTRUCTOR = (
    "(watch_paths, debug, force_polling, poll_delay_ms, recursive, ignore_permission_denied)"
)
_WATCH = "($self, debounce_ms, step_ms, timeout_ms, stop_event)"

# watchfiles' defaults (debounce 1600 ms, step 50 ms) batch changes for up to 1.6 s.
# ``_files`` settles files itself, so the watcher only has to report quickly.
_DEBOUNCE_MS = 20
_STEP_MS = 2
_TIMEOUT_MS = 1000


class Notifier(Protocol):
    """An armed OS watcher over one folder."""

    def watch(self, stop_event: Any) -> set[tuple[int, str]] | str:
        """Changes as ``{(code, path)}``, or ``"stop"`` / ``"timeout"`` / ``"signal"``."""

    def close(self) -> None:
        """Stop watching."""


_checked = False


def check_watchfiles() -> None:
    """Raise ``RuntimeError`` naming watchfiles if its private notifier moved.

    Raises:
        MissingDependencyError: watchfiles is not installed (extra ``files``).
        RuntimeError: the installed watchfiles has another ``RustNotify`` or change codes.
    """
    watchfiles: Any = require("watchfiles", "files")
    rust: Any = require("watchfiles._rust_notify", "files")
    notify = getattr(rust, "RustNotify", None)
    found = (
        getattr(notify, "__text_signature__", None),
        getattr(getattr(notify, "watch", None), "__text_signature__", None),
        [(change.name, change.value) for change in watchfiles.Change],
    )
    wanted = (
        _CONSTRUCTOR,
        _WATCH,
        [("added", ADDED), ("modified", MODIFIED), ("deleted", DELETED)],
    )
    if found != wanted:
        raise RuntimeError(
            f"watchfiles {getattr(watchfiles, 'VERSION', '?')} changed its private notifier "
            f"(found {found!r}, portico_rx expects {wanted!r}); install a watchfiles that "
            "portico_rx supports (pip install 'watchfiles>=0.21,<2') and report it"
        )


class _RustNotifier:
    def __init__(self, root: str, recursive: bool) -> None:
        rust: Any = require("watchfiles._rust_notify", "files")
        self._notify = rust.RustNotify([root], False, False, 300, recursive, True)

    def watch(self, stop_event: Any) -> set[tuple[int, str]] | str:
        result: set[tuple[int, str]] | str = self._notify.watch(
            _DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, stop_event
        )
        return result

    def close(self) -> None:
        self._notify.close()


def open_notifier(root: str, recursive: bool) -> Notifier:
    """An OS watcher over ``root``, armed when this returns.

    Raises:
        MissingDependencyError: watchfiles is not installed (extra ``files``).
        OSError: ``root`` cannot be watched.
    """
    global _checked
    if not _checked:
        check_watchfiles()
        _checked = True
    return _RustNotifier(root, recursive)
