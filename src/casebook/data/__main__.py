"""python -m casebook.data (make data-check): verify every dataset in the data root."""

import argparse
import sys

from .fetch import verify_all

if __name__ == "__main__":
    argparse.ArgumentParser(
        prog="python -m casebook.data",
        description="Verify every dataset of the registry in the data root ($CASEBOOK_DATA, default data/) "
        "against its sha256; exit 1 when one is missing or corrupt. Downloads nothing.",
    ).parse_args()
    results = verify_all()
    for key, msg in results.items():
        print(f"{key:20s} {msg}")
    sys.exit(0 if all(m == "ok" for m in results.values()) else 1)
