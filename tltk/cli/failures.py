"""Which exceptions `tltk` reports as one line (expected failures) and which keep their
traceback (bugs)."""

from __future__ import annotations

import dis


def expected_failure(error: Exception) -> str | None:
    """The message of an expected failure; None for a bug (it keeps its traceback).

    Expected: a TltkError anywhere; a ValueError or RuntimeError from a `raise` in tltk's own
    code (its messages are written for users: data, backbone and phase errors, an unreachable
    tfds host); any OSError (missing file, permission, disk full, network); a package that is
    not installed.
    """
    from tltk.errors import TltkError

    if isinstance(error, (TltkError, OSError)):
        return str(error)
    if isinstance(error, ModuleNotFoundError) and not (error.name or "tltk").startswith("tltk"):
        return f"{error}: a package this needs is not installed in this environment"
    if isinstance(error, (ValueError, RuntimeError)) and _raised_by_tltk(error):
        return str(error)
    return None


_RAISE = dis.opmap["RAISE_VARARGS"]


def _raised_by_tltk(error: BaseException) -> bool:
    """True when the innermost frame is tltk code stopped at a `raise` statement. A ValueError
    that float() or a dependency raises inside tltk is a bug, not a message for users."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    module = tb.tb_frame.f_globals.get("__name__", "")
    in_tltk = module == "tltk" or module.startswith("tltk.")
    return in_tltk and tb.tb_frame.f_code.co_code[tb.tb_lasti] == _RAISE
