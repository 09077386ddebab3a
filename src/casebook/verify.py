"""Re-check published numbers: re-execute notebooks on a copy and compare their results with the committed ones.

``python -m casebook.verify [NB ...]`` (``make verify NB=05``): each notebook (a number such as ``05``, or a
name; none = all) is executed in full mode as a copy inside a scratch folder, with its own assets, outputs and
MLflow store there (the committed notebook, ``assets/`` and your MLflow store are never written). Then, for
every metric the notebook published: committed value, rerun value, difference, tolerance (declared by the
results file, per model: see :func:`casebook.report.results_file.tolerance`) and verdict; the chosen model
too. Differences in library versions, CPU, devices and data files from the committed provenance are printed
beside the table. When the rerun chose another model, both choices' validation scores, the tie rule's margins
(:mod:`casebook.report.choice`) and each run's own choice's test metrics are printed, with a verdict in words.

Another machine, simulated (``make verify NB=05 THREADS=1`` or ``CPU=default``): ``--threads N`` runs the
kernels with N threads (parallel sums split differently), ``--cpu default`` with torch's unvectorised kernels
(other roundings); either changes notebook 05's trained weights from the first steps, as another CPU does.

Exit codes: 0 every number holds; 1 something moved beyond its tolerance (or is missing); 2 bad arguments or
missing data, said in one line before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import config, data, notebooks, provenance
from .data import fetch
from .report import results_file

PROG = "verify"
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
EXACT = 1e-6  # results files round to 6 decimals
WIDTH, MIN_WRAPPED = 100, 12  # the printed tables fit a 100-column terminal; wrapped columns keep 12
RULE_SHORT = {"ci_half_width": "(CI½)", "exact": "(exact)"}
CPU_CAPABILITIES = ("default", "avx2", "avx512")  # torch's kernel sets (ATEN_CPU_CAPABILITY), in order


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
    files = (json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json")))
    return [d for d in files if stem in d.get("runtimes", {})]


def _tolerance(rule: dict, metric: dict, same_versions: bool) -> float:
    lo, hi = metric["ci95"]
    return EXACT if rule.get("rule") == "exact" and same_versions else max((hi - lo) / 2, EXACT)


def produced_by(stem: str, results: dict) -> list[str]:
    """The models of a results file that notebook ``stem`` produced."""
    return results.get("models_by_notebook", {}).get(stem, list(results["models"]))


def compare(stem: str, committed: dict, rerun: dict | None) -> tuple[list[dict], list[str]]:
    """Rows (metric, committed, rerun, difference, tolerance, verdict) for every metric of every model the
    notebook published in ``committed``, and the provenance differences."""
    produced = produced_by(stem, committed)
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
                "model": model,
                "measure": metric,
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
                "model": "chosen model",
                "measure": "",
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


def render(header: tuple, body: list[tuple], width: int = WIDTH, wrap: tuple[int, ...] = (0,)) -> str:
    """A fixed-width text table no wider than ``width``: the widest of the ``wrap`` columns is narrowed, one
    character at a time, and its cells wrapped onto several lines, until the table fits."""
    lines = [tuple(str(c) for c in line) for line in [header, *body]]
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        k = max(wrap, key=lambda k: widths[k])
        if widths[k] <= MIN_WRAPPED:
            break
        widths[k] -= 1
    out = []
    for line in lines:
        cells = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(line, widths, strict=True)]
        for i in range(max(map(len, cells))):
            parts = [(c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
            out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def table(rows: list[dict], width: int = WIDTH) -> str:
    """The comparison as a fixed-width text table, model names and chosen models wrapped to fit ``width``."""
    header = ("model", "metric", "committed", "rerun", "difference", "tolerance", "verdict")
    body, previous = [], None
    for r in rows:
        body.append(
            (
                "" if r["model"] == previous else r["model"],  # the model's name once, on its first metric
                r["measure"],
                _cell(r["committed"]),
                _cell(r["rerun"]),
                "—" if r["difference"] is None else f"{r['difference']:+.6f}",
                r["rule"]
                if r["tolerance"] is None
                else f"±{r['tolerance']:.6f} {RULE_SHORT.get(r['rule'], r['rule'])}",
                r["verdict"],
            )
        )
        previous = r["model"]
    return render(header, body, width, wrap=(0, 2, 3))


def _margin(tie: dict | None) -> str:
    """A tie record's margin: the best's advantage over the reference with its 95% CI."""
    if tie is None:
        return "no tie rule"
    if tie["best"] == tie["reference"]:
        return "the reference is best"
    lo, hi = tie["ci95"]
    return f"{tie['advantage']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _verdict(mine: str, theirs: str, tie_a: dict | None, tie_b: dict | None) -> str:
    """Why the two runs chose differently, in words, from their tie records (``selection["tie"]``)."""
    if tie_a is None or tie_b is None:
        known, who = (tie_b, "rerun") if tie_b else (tie_a, "committed run")
        if known and known["chosen"] == known["reference"] != known["best"]:
            return (
                f"{mine} and {theirs} are tied on validation: the {who}'s tie rule puts {known['best']}'s lead at "
                f"{_margin(known)}, inside validation noise; the other run records no tie rule and took the "
                "higher score, which another CPU's rounding can swap"
            )
        return (
            f"{mine} and {theirs} swap places on validation; no tie rule is recorded, so each run took the higher "
            "score and verify cannot tell a tie (noise, e.g. another CPU's rounding) from a real difference"
        )
    kept_a, kept_b = tie_a["chosen"] == tie_a["reference"], tie_b["chosen"] == tie_b["reference"]
    if kept_a != kept_b:
        beat, kept, where = (tie_b, tie_a, "here") if kept_a else (tie_a, tie_b, "in the committed run")
        return (
            f"{beat['best']} beats the reference {beat['reference']} beyond validation noise only {where} "
            f"({_margin(beat)}; the other run: {_margin(kept)}{', tied' * (kept['best'] != kept['reference'])}): "
            "an advantage at the edge of the noise, which a change of machine moves across it"
        )
    if kept_a:  # both kept their reference, yet they differ
        return f"the runs name different references ({mine}, {theirs}): the notebook's rule changed between them"
    return (
        f"both runs prefer a model to the reference {tie_a['reference']} beyond validation noise, but not the same "
        f"one ({mine} {_margin(tie_a)}; {theirs} {_margin(tie_b)}): a real disagreement, see the provenance"
    )


def explain_choice(committed: dict, rerun: dict, width: int = WIDTH) -> str:
    """Why the rerun chose another model than the committed run: both choices' validation scores and the tie
    rule's margins, each run's own chosen model's test metrics, and the verdict in words."""
    mine, theirs = committed["best"], rerun["best"]
    sel_a, sel_b = committed.get("selection", {}), rerun.get("selection", {})
    ties = sel_a.get("tie"), sel_b.get("tie")
    references = {t["reference"] for t in ties if t}
    header = ("validation: " + (sel_a.get("metric") or sel_b.get("metric") or "score"), "committed run", "rerun")
    body = [
        (
            f"{name} (reference)" if name in references else name,
            *(_cell(s.get("scores", {}).get(name), 4) for s in (sel_a, sel_b)),
        )
        for name in dict.fromkeys([mine, theirs, *sorted(references)])
    ]
    body.append(("margin: best − reference [95% CI]", *map(_margin, ties)))
    out = [textwrap.fill(f"The choice differs: the committed run chose {mine}, the rerun {theirs}.", width)]
    out.append(render(header, body, width, (0, 1, 2)))
    tests = committed["models"].get(mine, {}), rerun["models"].get(theirs, {})
    header = ("test: each run's own choice", f"committed: {mine}", f"rerun: {theirs}")
    body = [
        (m, *(f"{t[m]['value']:.4f} [{t[m]['ci95'][0]:.4f}, {t[m]['ci95'][1]:.4f}]" if m in t else "—" for t in tests))
        for m in dict.fromkeys([*tests[0], *tests[1]])
    ]
    out.append(render(header, body, width, (0, 1, 2)))
    out.append(textwrap.fill(f"Verdict: {_verdict(mine, theirs, *ties)}.", width))
    return "\n".join(out)


def machine_setting(threads: int | None = None, cpu: str | None = None) -> tuple[dict[str, str], str]:
    """The kernel environment that makes this machine round like another one, and what it is in words.
    ``threads``: the thread pools' size (torch, MKL, oneDNN, TensorFlow): parallel sums split differently.
    ``cpu``: torch's kernels for another instruction set (``default``: not vectorised): other roundings in every
    vectorised kernel and in the weights' initialisation (measured for issue 40)."""
    env, said = {}, []
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads)}
        said.append(f"{threads} thread{'s' * (threads != 1)} (OMP_NUM_THREADS={threads})")
    if cpu is not None:
        env["ATEN_CPU_CAPABILITY"] = cpu
        native = _native_capability()
        lacks = native in CPU_CAPABILITIES and CPU_CAPABILITIES.index(cpu) > CPU_CAPABILITIES.index(native)
        fallback = f"; this CPU lacks it and falls back to {native}" if lacks else ""
        said.append(f"torch's {cpu} CPU kernels (ATEN_CPU_CAPABILITY={cpu}{fallback})")
    return env, "simulating another machine: " + ", ".join(said) if said else "this machine as it is"


def _native_capability() -> str:
    """The best kernel set torch finds on this CPU (under ``ATEN_CPU_CAPABILITY`` it reports the value asked
    for, even one the CPU lacks and does not run)."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    return done.stdout.strip().lower() or "unknown"


def execute_copy(
    path: Path, scratch: Path, committed_dir: Path, smoke: bool, timeout: int, machine: dict | None = None
) -> Path:
    """Execute ``path`` as ``scratch/<name>`` with every output under ``scratch`` (assets, outputs, MLflow;
    never a team server); the committed results are copied in first, since a notebook may read an earlier
    one's (02 reads 01's preprocessing). ``machine``: more kernel environment (:func:`machine_setting`).
    Returns the folder the rerun's results are in."""
    results = scratch / "assets" / "results"
    results.mkdir(parents=True, exist_ok=True)
    for f in committed_dir.glob("*.json"):
        shutil.copyfile(f, results / f.name)
    env = {
        "CASEBOOK_ASSETS": str(scratch / "assets"),
        "CASEBOOK_OUTPUTS": str(scratch / "outputs"),
        "CASEBOOK_MLFLOW": str(scratch / "mlflow"),
        "CASEBOOK_MLFLOW_URI": "",
        **(machine or {}),
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
    p.add_argument("--threads", type=int, help="simulate another machine: this many threads (make verify THREADS=1)")
    p.add_argument(
        "--cpu", choices=CPU_CAPABILITIES, help="simulate another machine: torch's kernels for this instruction set"
    )
    return p


def verify(args) -> int:
    committed_dir = args.committed or config.REPO_ROOT / "assets" / "results"
    if args.threads is not None and args.threads < 1:
        raise VerifyError(f"--threads must be at least 1, not {args.threads}")
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
    machine, setting = machine_setting(args.threads, args.cpu)
    scratch_root = args.scratch or Path(tempfile.mkdtemp(prefix="casebook-verify."))
    failed = False
    try:
        for path in paths:
            scratch = scratch_root / path.stem
            since = None
            if not args.no_execute:
                shutil.rmtree(scratch, ignore_errors=True)
                mode = "smoke" if args.smoke else "full"
                print(f"▶ {path.stem}: executing a copy in {mode} mode, {setting} ...", flush=True)
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
                try:
                    execute_copy(path, scratch, committed_dir, args.smoke, args.timeout, machine)
                except Exception as e:  # a failing cell: its numbers cannot hold
                    print(f"{path.stem}: the execution failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                    failed = True
            results = scratch / "assets" / "results"
            for d in committed[path.stem]:
                rerun = _rerun(results / f"{d['case']}.json", path.stem, since)
                rows, diffs = compare(path.stem, d, rerun)
                print(f"\n{path.stem} → {d['case']}")
                print(table(rows))
                print(textwrap.fill("provenance differences: " + ("; ".join(diffs) if diffs else "none"), WIDTH))
                if rerun is not None and d["best"] in produced_by(path.stem, d) and rerun.get("best") != d["best"]:
                    print(explain_choice(d, rerun))
                bad = [r["metric"] for r in rows if r["verdict"] != "ok"]
                if bad:
                    failed = True
                    print(textwrap.fill(f"does not hold: {', '.join(bad)}", WIDTH))
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch_root, ignore_errors=True)
    print(f"\nverdict ({setting}):", "some numbers do not hold" if failed else "every number holds")
    return EXIT_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return verify(build_parser().parse_args(argv))
    except VerifyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
