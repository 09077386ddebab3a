"""How the notebooks show tables: whole (nothing truncated), numbers to 4 significant digits."""

from __future__ import annotations

import math

import pandas as pd


def significant(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, in plain notation, without trailing zeros (0.0003333,
    0.8889, 0.05, 1234, 19,020)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    text = f"{value:.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text  # 0.05, not 0.05000; 5, not 5.000


def setup(digits: int = 4) -> None:
    """Set pandas' display once per notebook: no column or cell cut short ("max_d..."), every column shown,
    floats to ``digits`` significant digits."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.width", 200)
    pd.set_option("display.float_format", lambda v: significant(v, digits))
