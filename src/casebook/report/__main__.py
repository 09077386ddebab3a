"""python -m casebook.report (make results): rebuild the README results table from the results files."""

from __future__ import annotations

import argparse

from .readme_table import update_readme

if __name__ == "__main__":  # python -m casebook.report: refresh the README results table
    argparse.ArgumentParser(
        prog="python -m casebook.report",
        description="Rebuild README.md's results table (one row per notebook) from assets/results/*.json "
        "(full-mode results only).",
    ).parse_args()
    changed = update_readme()
    print("README results table", "updated" if changed else "unchanged")
