"""python -m casebook.redshift convert FOLDER --trust-pickle (see casebook.redshift.files.main)."""

from __future__ import annotations

from .files import main

if __name__ == "__main__":
    raise SystemExit(main())
