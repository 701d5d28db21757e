"""Helpers shared by the lock-order test files."""

from __future__ import annotations

import warnings

from lockwatch._errors import LockOrderWarning


def order_warnings(record: list[warnings.WarningMessage]) -> list[LockOrderWarning]:
    """The LockOrderWarnings among recorded warnings."""
    return [w.message for w in record if isinstance(w.message, LockOrderWarning)]  # type: ignore[misc]
