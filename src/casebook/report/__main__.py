"""python -m casebook.report (make results): rebuild the README results table from the results files."""

from __future__ import annotations

from .readme_table import update_readme

if __name__ == "__main__":  # python -m casebook.report: refresh the README results table
    changed = update_readme()
    print("README results table", "updated" if changed else "unchanged")
