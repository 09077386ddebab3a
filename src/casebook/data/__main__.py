"""python -m casebook.data (make data-check): verify every dataset in the data root."""

from __future__ import annotations

from .fetch import verify_all

if __name__ == "__main__":  # python -m casebook.data: verify the data root
    import sys

    results = verify_all()
    for key, msg in results.items():
        print(f"{key:20s} {msg}")
    sys.exit(0 if all(m == "ok" for m in results.values()) else 1)
