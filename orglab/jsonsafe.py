"""Strict JSON (RFC 8259) for everything orglab prints: NaN and infinities are not JSON, so they become null, and
the object says which values were nulled and why under the key `non_finite` (path -> 'nan', 'inf' or '-inf')."""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE_KEY = "non_finite"


def finite(obj: Any, path: str = "", nulled: dict[str, str] | None = None) -> Any:
    """`obj` with every non-finite float replaced by None; each replaced path is recorded in `nulled`."""
    if isinstance(obj, float) and not math.isfinite(obj):
        if nulled is not None:
            nulled[path or "."] = str(obj)
        return None
    if isinstance(obj, dict):
        return {k: finite(v, f"{path}.{k}" if path else str(k), nulled) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v, f"{path}[{i}]", nulled) for i, v in enumerate(obj)]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN or Infinity: such values are null, listed under `non_finite`."""
    nulled: dict[str, str] = {}
    clean = finite(obj, nulled=nulled)
    if nulled and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = {k: f"{v}: not a finite number, so null (e.g. a measurement with no samples)"
                                 for k, v in nulled.items()}
    return json.dumps(clean, allow_nan=False, **kwargs)
