"""Re-check published numbers: re-execute notebooks on a copy and compare their results with the committed ones.

``python -m casebook.verify [NB ...]`` (``make verify NB=05``): each notebook (a number such as ``05``, or a
name; none = all) is executed in full mode as a copy inside a scratch folder, with its own assets, outputs and
MLflow store there (the committed notebook, ``assets/`` and your MLflow store are never written). Then, for
every metric the notebook published: committed value, rerun value, difference, tolerance (declared by the
results file, per model: see :func:`casebook.report.tolerance`) and verdict; the chosen model too. Differences
in library versions, CPU, devices and data files from the committed provenance are printed beside the table.

Exit codes: 0 every number holds; 1 something moved beyond its tolerance (or is missing); 2 bad arguments or
missing data, said in one line before any work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import config, data, notebooks, provenance
from .data import fetch
from .report import results_file

PROG = "verify"
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
EXACT = 1e-6  # results files round to 6 decimals


class VerifyError(Exception):
    """Bad arguments or missing data: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        raise VerifyError(message)


def resolve(names: list[str], folder: Path | None = None) -> list[Path]:
    """Notebooks named by number (``05``), stem or file name; all of them for an empty list."""
    available = notebooks.list_notebooks(folder)
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in available if p.stem == stem or p.stem.split("_")[0] == stem]
        if len(hits) != 1:
            known = ", ".join(p.stem.split("_")[0] for p in available)
            raise VerifyError(f"no notebook matches {name!r} (notebooks: {known})")
        chosen.append(hits[0])
    return chosen


def check_data(committed: dict[str, list[dict]], smoke: bool) -> None:
    """Full mode needs, in the data root (verified, never downloaded here), every dataset the committed
    provenance says each notebook read."""
    if smoke:
        return
    for stem, files in committed.items():
        keys = {k for d in files for k in provenance.datasets_read(d.get("provenance", {}).get(stem, {}))}
        for key in sorted(keys):
            try:
                fetch.dataset_dir(key, download=False)
            except data.DataError as e:
                raise VerifyError(f"{stem} needs dataset {key!r}: {str(e).splitlines()[0]}") from None


def committed_results(stem: str, results_dir: Path) -> list[dict]:
    """The committed results files a notebook contributed to (it is among their ``runtimes``)."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        d = json.loads(path.read_text())
        if stem in d.get("runtimes", {}):
            found.append(d)
    return found


def _tolerance(rule: dict, metric: dict, same_versions: bool) -> float:
    lo, hi = metric["ci95"]
    half_width = (hi - lo) / 2
    if rule.get("rule") == "exact" and same_versions:
        return EXACT
    return max(half_width, EXACT)


def compare(stem: str, committed: dict, rerun: dict | None) -> tuple[list[dict], list[str]]:
    """Rows (metric, committed, rerun, difference, tolerance, verdict) for every metric of every model the
    notebook published in ``committed``, and the provenance differences."""
    produced = committed.get("models_by_notebook", {}).get(stem, list(committed["models"]))
    prov_a = committed.get("provenance", {}).get(stem, {})
    prov_b = (rerun or {}).get("provenance", {}).get(stem, {})
    same_versions = prov_a.get("versions") == prov_b.get("versions")
    rows = []
    for model in produced:
        rule = committed.get("tolerances", {}).get(model, results_file.tolerance("ci_half_width"))
        for metric, value in committed["models"][model].items():
            new = ((rerun or {}).get("models", {}).get(model) or {}).get(metric)
            tol = _tolerance(rule, value, same_versions)
            row = {
                "metric": f"{committed['case']}: {model} {metric}",
                "committed": value["value"],
                "rerun": None if new is None else new["value"],
                "tolerance": tol,
                "rule": rule["rule"],
            }
            row["difference"] = None if new is None else new["value"] - value["value"]
            row["verdict"] = "missing" if new is None else ("ok" if abs(row["difference"]) <= tol else "FAIL")
            rows.append(row)
    if committed["best"] in produced:
        again = (rerun or {}).get("best")
        rows.append(
            {
                "metric": f"{committed['case']}: chosen model",
                "committed": committed["best"],
                "rerun": again,
                "difference": None,
                "tolerance": None,
                "rule": "same model",
                "verdict": "ok" if again == committed["best"] else "FAIL",
            }
        )
    return rows, provenance.differences(prov_a, prov_b) if prov_b else ["no provenance in the rerun"]


def _cell(value, digits: int = 6) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(rows: list[dict]) -> str:
    """The comparison as a fixed-width text table."""
    header = ("metric", "committed", "rerun", "difference", "tolerance", "verdict")
    body = [
        (
            r["metric"],
            _cell(r["committed"]),
            _cell(r["rerun"]),
            "—" if r["difference"] is None else f"{r['difference']:+.6f}",
            r["rule"] if r["tolerance"] is None else f"{r['tolerance']:.6f} ({r['rule']})",
            r["verdict"],
        )
        for r in rows
    ]
    widths = [max(len(str(line[k])) for line in [header, *body]) for k in range(len(header))]
    rows = ("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body])
    return "\n".join(rows)


def execute_copy(path: Path, scratch: Path, committed_dir: Path, smoke: bool, timeout: int) -> Path:
    """Execute ``path`` as ``scratch/<name>`` with every output under ``scratch`` (assets, outputs, MLflow;
    never a team server); the committed results are copied in first, since a notebook may read an earlier
    one's (02 reads 01's preprocessing). Returns the folder the rerun's results are in."""
    results = scratch / "assets" / "results"
    results.mkdir(parents=True, exist_ok=True)
    for f in committed_dir.glob("*.json"):
        shutil.copyfile(f, results / f.name)
    env = {
        "CASEBOOK_ASSETS": str(scratch / "assets"),
        "CASEBOOK_OUTPUTS": str(scratch / "outputs"),
        "CASEBOOK_MLFLOW": str(scratch / "mlflow"),
        "CASEBOOK_MLFLOW_URI": "",
    }
    notebooks.execute(path, scratch / path.name, smoke=smoke, timeout=timeout, extra_env=env)
    return results


def _rerun(path: Path, stem: str, since: str | None) -> dict | None:
    """The rerun's results file, if this execution wrote it (its provenance for ``stem`` starts at or after
    ``since``): the scratch folder starts with copies of the committed files, which must not pass for a rerun."""
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    started = d.get("provenance", {}).get(stem, {}).get("started_utc", "")
    return d if since is None or started >= since else None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="numbers (05) or names; default: every notebook")
    p.add_argument("--committed", type=Path, help="the results to check (default: assets/results)")
    p.add_argument("--scratch", type=Path, help="where to execute (kept; default: a temporary folder)")
    p.add_argument(
        "--no-execute", action="store_true", help="compare the results already in --scratch instead of executing again"
    )
    p.add_argument("--smoke", action="store_true", help="smoke mode (tests); the committed results too")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    return p


def verify(args) -> int:
    committed_dir = args.committed or config.REPO_ROOT / "assets" / "results"
    if args.no_execute and not args.scratch:
        raise VerifyError("--no-execute compares an earlier rerun: give its --scratch folder")
    paths = resolve(args.notebooks)
    if not committed_dir.is_dir():
        raise VerifyError(f"no committed results in {config.display_path(committed_dir)}")
    committed = {p.stem: committed_results(p.stem, committed_dir) for p in paths}
    empty = [stem for stem, files in committed.items() if not files]
    if empty:
        raise VerifyError(f"no committed results of {', '.join(empty)} in {config.display_path(committed_dir)}")
    check_data(committed, args.smoke)
    scratch_root = args.scratch or Path(tempfile.mkdtemp(prefix="casebook-verify."))
    failed = False
    try:
        for path in paths:
            scratch = scratch_root / path.stem
            since = None
            if not args.no_execute:
                shutil.rmtree(scratch, ignore_errors=True)
                print(f"▶ {path.stem}: executing a copy in {'smoke' if args.smoke else 'full'} mode ...", flush=True)
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
                try:
                    execute_copy(path, scratch, committed_dir, args.smoke, args.timeout)
                except Exception as e:  # a failing cell: its numbers cannot hold
                    print(f"{path.stem}: the execution failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                    failed = True
            results = scratch / "assets" / "results"
            for d in committed[path.stem]:
                rerun = _rerun(results / f"{d['case']}.json", path.stem, since)
                rows, diffs = compare(path.stem, d, rerun)
                print(f"\n{path.stem} → {d['case']}")
                print(table(rows))
                print("provenance differences: " + ("; ".join(diffs) if diffs else "none"))
                bad = [r["metric"] for r in rows if r["verdict"] != "ok"]
                if bad:
                    failed = True
                    print(f"does not hold: {', '.join(bad)}")
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch_root, ignore_errors=True)
    print("\nverdict:", "some numbers do not hold" if failed else "every number holds")
    return EXIT_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return verify(build_parser().parse_args(argv))
    except VerifyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
