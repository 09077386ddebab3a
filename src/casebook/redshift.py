"""Redshift reliability (case study 4): a simulator, a reader for the real files, and the seed project's API —
``load_processed`` / ``load_dataset`` (11 items), ``make_CNN`` / ``make_CNNGRU`` / ``make_CNNLSTM``,
``save_in_dict`` (JSON) and ``fig`` — all importable from here.

Each object is **not a spectrum** but the redshift pipeline's log-probability curve (log-PDF) on a fixed grid of
17,908 redshifts, roughly uniform in ln(1+z) (step ≈ 1e-4, z from 0 to 5), plus catalogue attributes.

Files (real data, or written by :func:`save_files`) in ``<data root>/redshift/``:

* ``pdfs32.npy``       float32 (N, 17908) log-PDF
* ``zgrid32.npy``      float32 (17908,) the redshift grid
* ``attributes32.npy`` object (N, ≥ 7); columns used:

  ====  ==========================================================================================
  col   meaning
  ====  ==========================================================================================
  0     object id (simulator: ``sim000001`` …)
  1     estimated redshift (a value of the grid: the PDF's maximum)
  2     reference redshift (simulator: the true redshift)
  3     ΔZ = (z_est − z_ref) / (1 + z_ref), signed
  4     signal-to-noise ratio of the spectrum (simulator's S/N)
  5     status: ``success`` / ``spurious`` (reference z is a secondary peak) / anything else = mismatch
  6     log-evidence of the fit
  7     galaxy type (simulator: ``emission`` / ``passive``)
  last  reference quality flag (VIPERS zflag); its floor must be 1, 2, 3, 4 or 9
  ====  ==========================================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config
from .data import DataFormatError, DataNotFoundError
from .models import redshift_nets
from .models.summary import summary_text

N_GRID = 17908
Z_MAX = 5.0
LINES = {
    "[OII]": 3727.0,
    "Hbeta": 4861.0,
    "[OIII]": 5007.0,
    "Halpha": 6563.0,
    "MgII": 2800.0,
    "CaK": 3934.0,
    "CaH": 3969.0,
    "D4000": 4000.0,
}
EMISSION_LINES = ("[OII]", "Hbeta", "[OIII]", "Halpha", "MgII")
PASSIVE_FEATURES = ("CaK", "CaH", "D4000", "MgII")
STATUSES = ("success", "spurious", "mismatch")
FLAG_VALUES = (1, 2, 3, 4, 9)


def make_grid(n: int = N_GRID, z_max: float = Z_MAX) -> np.ndarray:
    """17,908 redshifts uniform in ln(1+z) from 0 to ``z_max`` (step ≈ 1.0e-4 in ln(1+z))."""
    return np.expm1(np.linspace(0.0, np.log1p(z_max), n)).astype(np.float32)


@dataclass
class SimulationConfig:
    """Every knob of :func:`simulate` (defaults sized for the notebook's time target)."""

    n: int = 8000
    seed: int = config.DEFAULT_SEED
    z_mean: float = 0.75  # survey-like n(z): mostly 0.4 < z < 1.2
    z_sd: float = 0.25
    emission_fraction: float = 0.6
    snr_median: float = 4.0  # log-normal signal-to-noise
    snr_sigma: float = 0.6
    width_floor: float = 4e-4  # peak width in ln(1+z): floor + width_scale / S/N
    width_scale: float = 2.5e-3
    alias_strength: float = 3.5  # alias weight ~ U(0.2,1) * alias_strength * exp(-S/N / alias_snr)
    alias_snr: float = 2.5
    mismatch_snr: float = 2.5  # P(true peak lost) = mismatch_max * exp(-S/N / mismatch_snr)
    mismatch_max: float = 0.5
    jitter: float = 0.5  # the true peak's centre is offset by N(0, jitter * width): measurement error
    floor: float = 1e-5  # relative floor of the PDF, with multiplicative noise
    noise: float = 0.3


@dataclass
class RedshiftData:
    """What the reader or the simulator returns: log-PDFs, grid and attributes (see the module docstring)."""

    log_pdf: np.ndarray  # float32 (N, G)
    zgrid: np.ndarray  # float32 (G,)
    attributes: np.ndarray  # object (N, ≥ 7)
    simulated: bool = True
    excluded: dict = field(default_factory=dict)  # reason → count, for rows dropped explicitly
    latent: dict | None = None  # the simulator's hidden per-object quantities (see LATENT_NAMES); None for real data

    @property
    def z_est(self):
        return self.attributes[:, 1].astype(float)

    @property
    def delta_z(self):
        return self.attributes[:, 3].astype(float)

    @property
    def status(self):
        s = self.attributes[:, 5].astype(str)
        return np.where(np.isin(s, ["success", "spurious"]), s, "mismatch")

    @property
    def log_evidence(self):
        return self.attributes[:, 6].astype(float)

    @property
    def flag(self):
        return np.floor(self.attributes[:, -1].astype(float)).astype(int)


def _aliases(z: float, kind: str, rng) -> list[float]:
    """Redshifts z' where a feature of the true spectrum is mistaken for another: (1+z') = (1+z)·λ1/λ2."""
    names = EMISSION_LINES if kind == "emission" else PASSIVE_FEATURES
    out = []
    for a in names:
        for b in names:
            if a != b:
                zp = (1 + z) * LINES[a] / LINES[b] - 1
                if 0.02 < zp < Z_MAX - 0.05 and abs(np.log1p(zp) - np.log1p(z)) > 0.01:
                    out.append(zp)
    rng.shuffle(out)
    return out


def simulate(cfg: SimulationConfig | None = None, progress: bool = False) -> RedshiftData:
    """Simulate N objects' log-PDFs and attributes, deterministically given ``cfg.seed``.

    Each PDF is a normalised mixture on the grid: a Gaussian peak at the true redshift (width shrinking with S/N,
    sometimes lost altogether at low S/N), 1–3 alias peaks from line confusions whose weights grow as S/N falls,
    a floor and multiplicative noise. Then, like a pipeline: z_est = the maximum, ΔZ, status, log-evidence and a
    visual-inspection flag drawn from how reliable the measurement actually is.
    """
    cfg = cfg or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    grid = make_grid()
    lg = np.log1p(grid.astype(np.float64))
    n = cfg.n
    z = np.clip(
        np.where(rng.random(n) < 0.9, rng.normal(cfg.z_mean, cfg.z_sd, n), rng.uniform(0.05, 3.5, n)), 0.05, 4.5
    )
    kind = np.where(rng.random(n) < cfg.emission_fraction, "emission", "passive")
    snr = np.exp(rng.normal(np.log(cfg.snr_median), cfg.snr_sigma, n))
    log_pdf = np.empty((n, grid.size), dtype=np.float32)
    attrs = np.empty((n, 9), dtype=object)
    latent = {name: np.zeros(n) for name in LATENT_NAMES}
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="simulating PDFs")
    for i in it:
        width = cfg.width_floor + cfg.width_scale / snr[i]
        lost = rng.random() < cfg.mismatch_max * np.exp(-snr[i] / cfg.mismatch_snr)
        centres, weights = [], []
        if not lost:
            centres.append(np.log1p(z[i]) + rng.normal(0, cfg.jitter * width))
            weights.append(1.0)
        aliases = _aliases(z[i], kind[i], rng)[: rng.integers(1, 4)]
        for zp in aliases:
            centres.append(np.log1p(zp))
            weights.append(rng.uniform(0.2, 1.0) * cfg.alias_strength * np.exp(-snr[i] / cfg.alias_snr))
        if lost:  # the pipeline locks onto noise features instead
            for _ in range(rng.integers(1, 3)):
                centres.append(rng.uniform(lg[1], lg[-2]))
                weights.append(rng.uniform(0.3, 1.0))
        shares = np.sort(np.asarray(weights))[::-1] / np.sum(weights)
        latent["width"][i], latent["n_peaks"][i] = width, len(weights)
        latent["top_share"][i], latent["second_share"][i] = shares[0], (shares[1] if len(shares) > 1 else 0.0)
        latent["true_rank"][i] = -1 if lost else int(np.sum(np.asarray(weights) > weights[0]))
        pdf = np.full(grid.size, cfg.floor)
        for c, w in zip(centres, weights, strict=False):
            lo, hi = np.searchsorted(lg, [c - 8 * width, c + 8 * width])
            pdf[lo:hi] += w * np.exp(-0.5 * ((lg[lo:hi] - c) / width) ** 2)
        pdf *= np.exp(rng.normal(0, cfg.noise, grid.size) * (pdf < 50 * cfg.floor))  # noise in the floor
        pdf /= pdf.sum()
        log_pdf[i] = np.log(pdf)
        k = int(np.argmax(pdf))
        z_est = float(grid[k])
        dz = (z_est - z[i]) / (1 + z[i])
        near_true = abs(np.log1p(z_est) - np.log1p(z[i])) < 3 * width
        if near_true and not lost:
            status = "success"
        elif not lost:
            status = "spurious"  # the true redshift is a secondary peak
        else:
            status = "mismatch"
        logev = float(2.0 * np.log(snr[i]) + rng.normal(0, 0.3) + (0.0 if status == "success" else -0.5))
        flag = _draw_flag(status, snr[i], kind[i], len(aliases), rng)
        attrs[i] = [f"sim{i:06d}", z_est, float(z[i]), float(dz), float(snr[i]), status, logev, kind[i], flag]
    return RedshiftData(log_pdf, grid, attrs, simulated=True, latent=latent)


# The simulator's hidden quantities per object: the true peak's width in ln(1+z), the number of peaks, the
# largest and second-largest weight shares of the noise-free mixture, and the true peak's rank by weight (0: it is
# the largest; -1: lost).
LATENT_NAMES = ("width", "n_peaks", "top_share", "second_share", "true_rank")


def ceiling_features(d: RedshiftData, oracle: bool = False) -> np.ndarray:
    """Features for the ceiling estimates, from the simulator's noise-free quantities. ``oracle=False``: what a
    perfect reader of the noise-free PDF could know (S/N, peak width, galaxy type, number of peaks, the two largest
    weight shares, z_est) but not which peak is the true one. ``oracle=True`` adds the true peak's rank, so only
    the measurement jitter is left unknown: an upper bound for any classifier of the PDF."""
    if d.latent is None:
        raise ValueError("ceilings need the simulator's hidden quantities: real data has none")
    lat = d.latent
    snr = d.attributes[:, 4].astype(float)
    emission = (d.attributes[:, 7] == "emission").astype(float)
    cols = [np.log(snr), lat["width"], emission, lat["n_peaks"], lat["top_share"], lat["second_share"], d.z_est]
    if oracle:
        cols += [lat["true_rank"], (lat["true_rank"] == 0).astype(float)]
    return np.column_stack(cols).astype(np.float64)


def _draw_flag(status: str, snr: float, kind: str, n_alias: int, rng) -> float:
    """Visual-inspection flag (VIPERS-like, floor 1/2/3/4/9, decimal part noise): confidence follows reliability.
    9 = a single emission line, redshift ambiguous."""
    if kind == "emission" and snr < 3 and n_alias >= 2 and rng.random() < 0.35:
        base = 9
    elif status == "success":
        p = np.array([0.03, 0.17, 0.35, 0.45]) if snr > 4 else np.array([0.1, 0.35, 0.35, 0.2])
        base = int(rng.choice([1, 2, 3, 4], p=p))
    else:
        base = int(rng.choice([1, 2, 3, 4], p=[0.5, 0.35, 0.1, 0.05]))
    return base + float(rng.choice([0.0, 0.2, 0.5]))


# ------------------------------------------------------------------------------------------------- files


ATTRIBUTE_FILES = ("attributes32.npz", "attributes32.npy")
CONVERT_HINT = (
    "convert it once with `python -m casebook.redshift convert {folder} --trust-pickle` (only for a "
    "file you produced yourself: converting unpickles it), which writes attributes32.npz of typed "
    "columns that load without pickle; or pass allow_pickle=True / --trust-pickle"
)


def attributes_to_columns(attributes: np.ndarray) -> dict[str, np.ndarray]:
    """An object attribute table → typed columns (``col0``, ``col1``, …: float64 where every value is a
    number, else unicode strings), storable with ``np.savez`` and loadable without pickle."""
    columns = {}
    for j in range(attributes.shape[1]):
        col = attributes[:, j]
        try:
            columns[f"col{j}"] = col.astype(np.float64)
        except (TypeError, ValueError):
            columns[f"col{j}"] = col.astype(str)
    return columns


def columns_to_attributes(columns) -> np.ndarray:
    """Inverse of :func:`attributes_to_columns`: the object table the rest of this module reads."""
    names = sorted(columns, key=lambda k: int(k[3:]))
    if not names or any(not (k.startswith("col") and k[3:].isdigit()) for k in names):
        raise DataFormatError(f"attributes32.npz must hold columns col0, col1, …; found {sorted(columns)}")
    arrays = [np.asarray(columns[k]) for k in names]
    if any(a.ndim != 1 or a.dtype.kind not in "fiuUS" or len(a) != len(arrays[0]) for a in arrays):
        raise DataFormatError(
            "attributes32.npz: every column must be a 1-D array of numbers or strings, all of one length"
        )
    out = np.empty((len(arrays[0]), len(arrays)), dtype=object)
    for j, a in enumerate(arrays):
        out[:, j] = a.astype(str) if a.dtype.kind in "US" else a
    return out


def save_files(d: RedshiftData, folder: Path) -> Path:
    """Write the real-data layout: ``pdfs32.npy``, ``zgrid32.npy`` and the attributes as typed columns in
    ``attributes32.npz`` (no pickle; the simulator can stand in for the survey)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "pdfs32.npy", d.log_pdf.astype(np.float32))
    np.save(folder / "zgrid32.npy", d.zgrid.astype(np.float32))
    with config.atomic_path(folder / "attributes32.npz", suffix=".npz") as tmp:
        np.savez(tmp, **attributes_to_columns(d.attributes))
    return folder


def _load_array(path: Path, **kw) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, **kw)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"{path}: not a plain numeric .npy array ({str(e).splitlines()[0]})") from None


def read_attributes(folder: Path, allow_pickle: bool = False) -> np.ndarray:
    """The attribute table: ``attributes32.npz`` (typed columns) if present, else ``attributes32.npy``.

    An object ``.npy`` (the survey's export) can only be read by unpickling, which can run code from the file:
    that needs ``allow_pickle=True``, for files you produced yourself; otherwise a :class:`DataFormatError`
    says how to convert it once."""
    npz = folder / "attributes32.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as columns:
                return columns_to_attributes({k: columns[k] for k in columns.files})
        except (ValueError, OSError, EOFError) as e:
            raise DataFormatError(f"{npz}: unreadable ({str(e).splitlines()[0]})") from None
    npy = folder / "attributes32.npy"
    try:
        return np.load(npy, allow_pickle=allow_pickle)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataFormatError(
                f"{npy} is a pickled object array, and loading it could run code hidden in the "
                f"file; {CONVERT_HINT.format(folder=folder)}"
            ) from None
        raise DataFormatError(f"{npy}: unreadable ({str(e).splitlines()[0]})") from None
    except Exception as e:  # a broken pickle stream (only reached with allow_pickle=True)
        raise DataFormatError(f"{npy}: unreadable ({type(e).__name__})") from None


def convert_attributes(folder: Path, trust_pickle: bool = False) -> Path:
    """One-off conversion of a pickled ``attributes32.npy`` (object array) into ``attributes32.npz`` of typed
    columns. Unpickling runs whatever the file says: ``trust_pickle=True`` states that you produced it."""
    folder = Path(folder)
    if not trust_pickle:
        raise DataFormatError(
            f"converting {folder / 'attributes32.npy'} unpickles it, which can run code hidden "
            f"in the file: pass trust_pickle=True (--trust-pickle) only for a file you produced"
        )
    attributes = read_attributes_npy(folder)
    with config.atomic_path(folder / "attributes32.npz", suffix=".npz") as tmp:
        np.savez(tmp, **attributes_to_columns(attributes))
    return folder / "attributes32.npz"


def read_attributes_npy(folder: Path) -> np.ndarray:
    npy = folder / "attributes32.npy"
    if not npy.is_file():
        raise DataNotFoundError(f"{npy} not found")
    attributes = np.load(npy, allow_pickle=True)
    if attributes.ndim != 2:
        raise DataFormatError(f"{npy}: expected a 2-D table, got shape {attributes.shape}")
    return attributes


def read_files(folder: Path | None = None, on_bad_flag: str = "error", allow_pickle: bool = False) -> RedshiftData:
    """Read ``pdfs32.npy``, ``zgrid32.npy`` and the attributes (``attributes32.npz``, or ``attributes32.npy``:
    see :func:`read_attributes`) from ``folder`` (default ``<data root>/redshift``) and validate them.

    Nothing is unpickled unless ``allow_pickle=True``. Shapes must agree and every PDF value must be finite;
    flags whose floor is not 1/2/3/4/9 raise, or with ``on_bad_flag='exclude'`` are dropped and counted in
    ``.excluded`` (never relabelled silently).
    """
    folder = Path(folder or config.data_root() / "redshift")
    missing = [n for n in ("pdfs32.npy", "zgrid32.npy") if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in ATTRIBUTE_FILES):
        missing.append("attributes32.npz (or the survey's attributes32.npy)")
    if missing:
        raise DataNotFoundError(
            f"redshift data not found: put {', '.join(missing)} in {folder}/ (the survey's "
            f"PDF export; or use casebook.redshift.simulate())"
        )
    pdfs = _load_array(folder / "pdfs32.npy", mmap_mode="r")
    zgrid = _load_array(folder / "zgrid32.npy")
    attrs = read_attributes(folder, allow_pickle)
    if pdfs.dtype.kind != "f" or zgrid.dtype.kind != "f":
        raise DataFormatError(
            f"{folder}: pdfs32.npy and zgrid32.npy must hold floats (got {pdfs.dtype} and {zgrid.dtype})"
        )
    return validate(RedshiftData(np.asarray(pdfs), zgrid, attrs, simulated=False), on_bad_flag)


def validate(d: RedshiftData, on_bad_flag: str = "error") -> RedshiftData:
    """Check shapes, finiteness and flags (see :func:`read_files`)."""
    if d.log_pdf.ndim != 2 or d.zgrid.ndim != 1 or d.log_pdf.shape[1] != d.zgrid.shape[0]:
        raise DataFormatError(f"PDF grid mismatch: pdfs {d.log_pdf.shape} vs zgrid {d.zgrid.shape}")
    if d.attributes.ndim != 2 or d.attributes.shape[0] != d.log_pdf.shape[0] or d.attributes.shape[1] < 7:
        raise DataFormatError(
            f"attributes {d.attributes.shape} do not match pdfs {d.log_pdf.shape} "
            f"(need one row per PDF and at least 7 columns)"
        )
    bad_rows = ~np.isfinite(d.log_pdf).all(axis=1)
    if bad_rows.any():
        raise DataFormatError(
            f"{int(bad_rows.sum())} PDFs contain NaN or inf (first at row {int(np.argmax(bad_rows))})"
        )
    try:
        flags = np.floor(d.attributes[:, -1].astype(float)).astype(int)
    except (TypeError, ValueError):
        raise DataFormatError("the last attribute column (quality flag) is not numeric") from None
    unknown = ~np.isin(flags, FLAG_VALUES)
    if unknown.any():
        values = sorted(set(flags[unknown].tolist()))
        if on_bad_flag != "exclude":
            raise DataFormatError(
                f"{int(unknown.sum())} objects have unknown flag values {values[:10]} "
                f"(allowed floors: {FLAG_VALUES}); pass on_bad_flag='exclude' to drop them"
            )
        keep = ~unknown
        d = RedshiftData(
            d.log_pdf[keep],
            d.zgrid,
            d.attributes[keep],
            d.simulated,
            {**d.excluded, f"unknown flag {values}": int(unknown.sum())},
        )
    return d


def load(
    n: int | None = None, seed: int = config.DEFAULT_SEED, folder: Path | None = None, allow_pickle: bool = False
) -> RedshiftData:
    """Real files when present in the data root, else the simulator (say which: ``.simulated``).
    Smoke mode simulates 300 objects. ``allow_pickle``: see :func:`read_attributes`."""
    folder = Path(folder or config.data_root() / "redshift")
    if (folder / "pdfs32.npy").is_file():
        d = read_files(folder, allow_pickle=allow_pickle)
        if n and n < len(d.log_pdf):
            keep = np.sort(np.random.default_rng(seed).choice(len(d.log_pdf), n, replace=False))
            d = RedshiftData(d.log_pdf[keep], d.zgrid, d.attributes[keep], False, d.excluded)
        return d
    return simulate(SimulationConfig(n=n or config.pick(8000, 300), seed=seed))


# ------------------------------------------------------------------------------------------------- targets
TARGETS = ("DeltaZ", "Success2", "Success3", "Flag3")
INPUTS = ("logPDF", "PDF", "logLikelihood")


def make_target(d: RedshiftData, target: str, threshold: float = 1e-3) -> tuple[np.ndarray, list[str]]:
    """Integer labels and class names for ``target``:

    * ``DeltaZ``: 1 if |ΔZ| < threshold (names built from the threshold used);
    * ``Success2``: success vs failure (spurious + mismatch); ``Success3``: success / spurious / mismatch;
    * ``Flag3``: flag 1 / flags 2 + 9 / flags 3 + 4.
    """
    if target == "DeltaZ":
        return (np.abs(d.delta_z) < threshold).astype(np.int64), [f"|ΔZ| ≥ {threshold:g}", f"|ΔZ| < {threshold:g}"]
    if target == "Success2":
        return (d.status == "success").astype(np.int64), ["failure", "success"]
    if target == "Success3":
        return np.array([STATUSES.index(s) for s in d.status], dtype=np.int64), list(STATUSES)
    if target == "Flag3":
        f = d.flag
        return np.select([f == 1, np.isin(f, [2, 9]), np.isin(f, [3, 4])], [0, 1, 2]).astype(np.int64), [
            "flag 1",
            "flags 2+9",
            "flags 3+4",
        ]
    raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def make_input(d: RedshiftData, input_data: str = "logPDF", idx=None) -> np.ndarray:
    """float32 (n, G, 1) network input: ``logPDF``, ``PDF`` (exp, rescaled by its max) or ``logLikelihood``
    (log-PDF + log-evidence)."""
    x = d.log_pdf if idx is None else d.log_pdf[idx]
    if input_data == "logPDF":
        out = x.astype(np.float32, copy=True)
    elif input_data == "PDF":
        out = np.exp(x - x.max(axis=1, keepdims=True)).astype(np.float32)
    elif input_data == "logLikelihood":
        ev = d.log_evidence if idx is None else d.log_evidence[idx]
        out = (x + ev[:, None]).astype(np.float32)
    else:
        raise ValueError(f"unknown input {input_data!r}; choose one of {', '.join(INPUTS)}")
    return out[..., None]


SEED_RETURN = (
    "X_train",
    "X_validation",
    "X_test",
    "target_train",
    "target_validation",
    "target_test",
    "Y_train",
    "Y_validation",
    "Y_test",
    "nb_class",
    "nom_classes",
)


@dataclass
class Dataset:
    """Train / validation / test arrays. Unpacks like the seed's 11 documented items, in their order
    (:data:`SEED_RETURN`)::

        (X_train, X_validation, X_test, target_train, target_validation, target_test,
         Y_train, Y_validation, Y_test, nb_class, nom_classes) = load_dataset("DeltaZ", False)

    and keeps casebook's attribute names too (``X_valid``, ``y_train``, ``n_classes``, ``idx_*``, ``z_*``)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: list[str]
    idx_train: np.ndarray
    idx_valid: np.ndarray
    idx_test: np.ndarray
    z_train: np.ndarray | None = None  # estimated redshift (second input of the 2-input model)
    z_valid: np.ndarray | None = None
    z_test: np.ndarray | None = None

    def onehot(self, y):
        return np.eye(self.n_classes, dtype=np.float32)[y]

    @property
    def Y_train(self):
        return self.onehot(self.y_train)

    @property
    def Y_valid(self):
        return self.onehot(self.y_valid)

    @property
    def Y_test(self):
        return self.onehot(self.y_test)

    X_validation = property(lambda self: self.X_valid)
    target_train = property(lambda self: self.y_train)
    target_validation = property(lambda self: self.y_valid)
    target_test = property(lambda self: self.y_test)
    Y_validation = property(lambda self: self.Y_valid)
    nb_class = property(lambda self: self.n_classes)
    nom_classes = property(lambda self: self.class_names)

    def __iter__(self):
        return iter(getattr(self, name) for name in SEED_RETURN)

    def __getitem__(self, index):
        """``r[0]`` is ``X_train``, ``r[-1]`` the class names, ``r[:3]`` the three inputs: the documented tuple."""
        return tuple(self)[index]

    def __len__(self):
        return len(SEED_RETURN)


def split_indices(y, seed: int = config.DEFAULT_SEED, valid: float = 0.15, test: float = 0.15):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    tr, va = train_test_split(tr, test_size=valid / (1 - test), stratify=y[tr], random_state=seed)
    return np.sort(tr), np.sort(va), np.sort(te)


def undersample_indices(idx: np.ndarray, y: np.ndarray, seed: int = config.DEFAULT_SEED) -> np.ndarray:
    """Balance classes among ``idx`` by dropping majority rows (use on the training indices only)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y[idx])
    m = counts[counts > 0].min()
    keep = [rng.choice(idx[y[idx] == c], m, replace=False) for c in np.unique(y[idx])]
    return np.sort(np.concatenate(keep))


def load_dataset(
    target: str = "DeltaZ",
    Undersample: bool = False,
    input_data: str = "logPDF",
    seed: int = config.DEFAULT_SEED,
    data: RedshiftData | None = None,
    threshold: float = 1e-3,
    *,
    undersample: bool | None = None,
    pool: int = 1,
) -> Dataset:
    """The seed's ``load_dataset(target, Undersample)``: stratified, seeded 70/15/15 splits of ``data`` (default
    :func:`load`), unpacking into the 11 documented items. Undersampling (``Undersample``, or casebook's
    ``undersample=`` keyword) is applied to the **training set only**; validation and test keep the real class
    balance. ``pool > 1`` max-pools the PDFs by that factor (:func:`pool_pdfs`), split by split."""
    undersample = Undersample if undersample is None else undersample
    d = data if data is not None else load(seed=seed)
    y, names = make_target(d, target, threshold)
    tr, va, te = split_indices(y, seed)
    if undersample:
        tr = undersample_indices(tr, y, seed)
    z = d.z_est.astype(np.float32)
    X = {name: pool_pdfs(make_input(d, input_data, idx), pool) for name, idx in (("tr", tr), ("va", va), ("te", te))}
    return Dataset(X["tr"], y[tr], X["va"], y[va], X["te"], y[te], len(names), names, tr, va, te, z[tr], z[va], z[te])


def pool_pdfs(X: np.ndarray, factor: int) -> np.ndarray:
    """Max-pool log-PDFs ``(n, G[, 1])`` by ``factor`` along the grid (the tail is padded with each row's minimum):
    every peak keeps its height, the grid step grows ``factor`` times. Done once, before training, it makes an
    epoch about ``factor`` times cheaper than feeding the full 17,908 points."""
    x = X[..., 0] if X.ndim == 3 else X
    if factor <= 1:
        return X
    pad = (-x.shape[1]) % factor
    if pad:
        x = np.concatenate([x, np.repeat(x.min(axis=1, keepdims=True), pad, axis=1)], axis=1)
    return x.reshape(len(x), -1, factor).max(axis=2)[..., None].astype(np.float32)


def pooled(ds: Dataset, factor: int) -> Dataset:
    """``ds`` with every split's PDFs max-pooled by ``factor`` (:func:`pool_pdfs`)."""
    from dataclasses import replace

    return replace(
        ds,
        X_train=pool_pdfs(ds.X_train, factor),
        X_valid=pool_pdfs(ds.X_valid, factor),
        X_test=pool_pdfs(ds.X_test, factor),
    )


def fit_feature_classifier(features: np.ndarray, ds: Dataset, seed: int = config.DEFAULT_SEED):
    """Gradient boosting on per-object ``features`` (PDF summaries, or the ceilings' noise-free quantities) with
    ``ds``'s split: fitted on the training rows only. Returns ``(model, validation accuracy, test
    probabilities)``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=seed).fit(features[ds.idx_train], ds.y_train)
    return model, float(model.score(features[ds.idx_valid], ds.y_valid)), model.predict_proba(features[ds.idx_test])


def test_metrics(ds: Dataset, proba) -> dict:
    """Bootstrap test metrics of class probabilities ``proba`` on ``ds``'s test rows: the binary set (with ROC and
    PR AUC of class 1) for two classes, the multiclass set (accuracy, macro-F1 …) otherwise."""
    from . import report

    proba = np.asarray(proba)
    pred = proba.argmax(1)
    if ds.n_classes == 2:
        return report.bootstrap_metrics(ds.y_test, pred, proba[:, 1])
    return report.bootstrap_metrics(ds.y_test, pred, metrics=report.MULTICLASS_METRICS)


def plot_example_pdfs(d: RedshiftData, per_status: int = 3, window: float = 25.0):
    """A grid of example log-PDFs, one row per status (success / spurious / mismatch), with the reference and
    estimated redshifts marked; y-limits show the top ``window`` nats of each curve."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(STATUSES), per_status, figsize=(5 * per_status, 9), squeeze=False)
    for row, status in zip(axes, STATUSES, strict=False):
        for ax, i in zip(row, np.flatnonzero(d.status == status)[:per_status], strict=False):
            z_ref, z_est, snr = (float(d.attributes[i, k]) for k in (2, 1, 4))
            ax.plot(d.zgrid, d.log_pdf[i], lw=0.6)
            ax.axvline(z_ref, color="tab:green", ls="--", lw=1, label=f"reference z {z_ref:.3f}")
            ax.axvline(z_est, color="tab:red", ls=":", lw=1.2, label=f"estimated z {z_est:.3f}")
            ax.set(
                title=f"{status}: S/N {snr:.1f}, flag {d.attributes[i, -1]}",
                xlabel="z",
                ylabel="log PDF",
                ylim=(d.log_pdf[i].max() - window, d.log_pdf[i].max() + 2),
            )
            ax.legend(fontsize=7)
    return fig


def with_extra_inputs(ds: Dataset, features: np.ndarray) -> Dataset:
    """``ds`` whose second input (``z_*``, used by the two-input model) holds ``features[idx]`` per split — e.g.
    the baseline's PDF summaries, so that the network sees what the baseline sees."""
    from dataclasses import replace

    f = np.asarray(features, dtype=np.float32)
    return replace(ds, z_train=f[ds.idx_train], z_valid=f[ds.idx_valid], z_test=f[ds.idx_test])


def data_fingerprint(d: RedshiftData) -> str:
    """A short hash of what a split depends on (object ids, redshifts, ΔZ, status, flags, grid size)."""
    import hashlib

    h = hashlib.sha256()
    h.update(repr(d.log_pdf.shape).encode())
    for col in (0, 1, 2, 3, 5, -1):
        h.update("\x1f".join(map(str, d.attributes[:, col])).encode())
    return h.hexdigest()[:16]


def load_processed(
    target: str = "DeltaZ",
    Undersample: bool = False,
    input_data: str = "logPDF",
    seed: int = config.DEFAULT_SEED,
    folder: Path | None = None,
    data: RedshiftData | None = None,
    threshold: float = 1e-3,
    *,
    undersample: bool | None = None,
    pool: int = 1,
) -> Dataset:
    """The seed's ``load_processed(target, Undersample)``: :func:`load_dataset`, cached on disk the way the seed
    kept its splits, ``<folder>/<target>/<balanced|unbalanced>/<key>/{TRAIN,VALID,TEST}/{X,Y,Z}.npy`` +
    ``meta.json``. The key covers everything the split depends on (input representation, seed, threshold, and a
    fingerprint of the data), so a cache made from other data or settings is never returned."""
    undersample = Undersample if undersample is None else undersample
    d = data if data is not None else load(seed=seed)
    settings = {
        "target": target,
        "undersample": bool(undersample),
        "input": input_data,
        "seed": seed,
        "threshold": threshold,
        "data": data_fingerprint(d),
        "pool": int(pool),
    }
    import hashlib

    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(folder or config.outputs_dir() / "redshift" / "processed")
    base = folder / target / ("balanced" if undersample else "unbalanced") / key
    meta_path = base / "meta.json"
    parts = ("TRAIN", "VALID", "TEST")
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("settings") == settings:
        meta = json.loads(meta_path.read_text())
        arrays = {s: [np.load(base / s / f"{a}.npy") for a in "XYZ"] for s in parts}
        idx = {s: np.asarray(meta["idx"][s]) for s in parts}
        return Dataset(
            *arrays["TRAIN"][:2],
            *arrays["VALID"][:2],
            *arrays["TEST"][:2],
            meta["n_classes"],
            meta["class_names"],
            idx["TRAIN"],
            idx["VALID"],
            idx["TEST"],
            arrays["TRAIN"][2],
            arrays["VALID"][2],
            arrays["TEST"][2],
        )
    ds = load_dataset(
        target, input_data=input_data, seed=seed, data=d, threshold=threshold, undersample=undersample, pool=pool
    )
    splits = {
        "TRAIN": (ds.X_train, ds.y_train, ds.z_train),
        "VALID": (ds.X_valid, ds.y_valid, ds.z_valid),
        "TEST": (ds.X_test, ds.y_test, ds.z_test),
    }
    for s, arrays in splits.items():
        (base / s).mkdir(parents=True, exist_ok=True)
        for name, arr in zip("XYZ", arrays, strict=False):
            np.save(base / s / f"{name}.npy", arr)
    meta = {
        "settings": settings,
        "n_classes": ds.n_classes,
        "class_names": ds.class_names,
        "idx": {"TRAIN": ds.idx_train.tolist(), "VALID": ds.idx_valid.tolist(), "TEST": ds.idx_test.tolist()},
    }
    with config.atomic_path(meta_path) as tmp:  # written last: a cache without it is never read
        tmp.write_text(json.dumps(meta))
    return ds


# ------------------------------------------------------------------------------------------------- baseline


def pdf_summaries(
    log_pdf: np.ndarray, zgrid: np.ndarray, log_evidence: np.ndarray | None = None, window: int = 200, chunk: int = 256
) -> np.ndarray:
    """Hand-made features per PDF for the honest baseline: peak probability, second-peak ratio (highest
    value farther than ``window`` grid points from the maximum, over the maximum), entropy (nats), width
    (grid points above half the maximum), estimated z, and log-evidence if given. Computed ``chunk`` rows at a
    time, so memory stays small whatever N is."""
    x_all = log_pdf[..., 0] if log_pdf.ndim == 3 else log_pdf
    out = []
    cols = np.arange(x_all.shape[1])[None, :]
    for start in range(0, len(x_all), chunk):
        x = np.asarray(x_all[start : start + chunk], dtype=np.float64)
        p = np.exp(x - x.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        k = p.argmax(1)
        peak = p[np.arange(len(p)), k]
        second = np.where(np.abs(cols - k[:, None]) > window, p, 0).max(1)
        entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(1)
        width = (p > peak[:, None] / 2).sum(1)
        out.append(np.column_stack([np.log(peak), second / peak, entropy, np.log(width), zgrid[k]]))
    feats = np.concatenate(out)
    if log_evidence is not None:
        feats = np.column_stack([feats, log_evidence])
    return feats.astype(np.float64)


SUMMARY_NAMES = ["log peak probability", "second-peak ratio", "entropy", "log width", "z_est", "log-evidence"]


# ------------------------------------------------------------------------------------------------- the seed's report

SEED_RECORD_KEYS = (
    "conf_matrix_train",
    "conf_matrix_test",
    "nb_class",
    "nom_classes",
    "acc",
    "loss",
    "val_acc",
    "val_loss",
    "report",
    "model_summary",
    "lr",
)


def seed_record(model, x_test, y_test, x_train, y_train, history, n_classes: int, class_names) -> dict:
    """The model's results as a dict with exactly the seed's documented keys (:data:`SEED_RECORD_KEYS`).
    ``y_*`` are one-hot; ``history`` is a Keras History, its dict, or a dict of per-epoch lists."""
    from sklearn.metrics import classification_report, confusion_matrix

    h = getattr(history, "history", history) or {}
    labels = list(range(int(n_classes)))
    names = [str(n) for n in class_names]
    truth = {name: np.asarray(y).argmax(1) for name, y in (("train", y_train), ("test", y_test))}
    pred = {name: model.predict(x, verbose=0).argmax(1) for name, x in (("train", x_train), ("test", x_test))}
    per_epoch = lambda *keys: [float(v) for v in next((h[k] for k in keys if k in h), [])]  # noqa: E731
    return {
        "conf_matrix_train": confusion_matrix(truth["train"], pred["train"], labels=labels).tolist(),
        "conf_matrix_test": confusion_matrix(truth["test"], pred["test"], labels=labels).tolist(),
        "nb_class": int(n_classes),
        "nom_classes": names,
        "acc": per_epoch("accuracy", "acc"),
        "loss": per_epoch("loss"),
        "val_acc": per_epoch("val_accuracy", "val_acc"),
        "val_loss": per_epoch("val_loss"),
        "report": classification_report(
            truth["test"], pred["test"], labels=labels, target_names=names, output_dict=True, zero_division=0
        ),
        "model_summary": summary_text(model),
        "lr": per_epoch("learning_rate", "lr"),
    }


def save_in_dict(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes, file_name) -> dict:
    """The seed's ``save_in_dict``: :func:`seed_record`, written to ``file_name`` as **JSON** (never pickle;
    ``.json`` is added when the name has no suffix) and returned."""
    from .report import save_record

    record = seed_record(model, X_test, Y_test, X_train, Y_train, history, nb_class, nom_classes)
    path = Path(file_name)
    save_record(record, path if path.suffix else path.with_suffix(".json"))
    return record


# ------------------------------------------------------------------------------------------------- the seed's networks


def _length(input_shape) -> int:
    """The seed passes ``input_shape=(17908, 1)``; casebook's callers pass the length: accept both."""
    if isinstance(input_shape, (tuple, list)):
        if len(input_shape) != 2 or input_shape[1] != 1:
            raise ValueError(f"input_shape must be (length, 1), got {tuple(input_shape)}")
        return int(input_shape[0])
    return int(input_shape)


def make_CNN(input_shape, num_classes: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: N802
    """The seed's ``make_CNN(input_shape, num_classes)`` (``input_shape=(17908, 1)``, or the length alone):
    :func:`casebook.models.redshift_nets.cnn`, compiled for ``fit(X, Y)`` with one-hot ``Y``."""
    return redshift_nets.cnn(_length(input_shape), num_classes, lr, downsample)


def make_CNN8(input_shape, n_classes: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: N802
    """The seed's ``make_CNN8``: :func:`casebook.models.redshift_nets.cnn8`."""
    return redshift_nets.cnn8(_length(input_shape), n_classes, lr, downsample)


def make_CNNGRU(
    input,
    output: int,
    dropout: float = 0.2,
    lr: float = 1e-3,  # noqa: A002, N802
    downsample: int = redshift_nets.DOWNSAMPLE,
):
    """The seed's ``make_CNNGRU(input, output, dropout=.2)``: :func:`casebook.models.redshift_nets.cnn_gru`."""
    return redshift_nets.cnn_gru(_length(input), output, dropout, lr, downsample)


def make_CNNLSTM(input, output: int, lr: float = 1e-3, downsample: int = redshift_nets.DOWNSAMPLE):  # noqa: A002, N802
    """The seed's ``make_CNNLSTM(input, output)``: :func:`casebook.models.redshift_nets.cnn_lstm`."""
    return redshift_nets.cnn_lstm(_length(input), output, lr, downsample)


def make_CNN_2inputs(
    input_shape,
    n_classes: int,
    lr: float = 1e-3,  # noqa: N802
    downsample: int = redshift_nets.DOWNSAMPLE,
    n_extra: int = 1,
):
    """The seed's ``make_CNN_2inputs``: :func:`casebook.models.redshift_nets.cnn_two_inputs`."""
    return redshift_nets.cnn_two_inputs(_length(input_shape), n_classes, lr, downsample, n_extra)


def fig(file_name):
    """The seed's ``fig(file_name)``: the 2×2 report figure (train and test confusion matrices, learning curves,
    per-class metrics) drawn from a :func:`save_in_dict` file, saved beside it as ``.png`` and returned."""
    from .report import record_figure

    path = Path(file_name)
    path = path if path.suffix else path.with_suffix(".json")
    d = json.loads(path.read_text())
    missing = sorted(set(SEED_RECORD_KEYS) - set(d))
    if missing:
        raise DataFormatError(f"{path} is not a save_in_dict file: missing {missing}")
    val_loss = d["val_loss"] or d["loss"]
    record = {
        "class_names": d["nom_classes"],
        "cm_train": d["conf_matrix_train"],
        "cm_test": d["conf_matrix_test"],
        "loss": d["loss"],
        "val_loss": d["val_loss"],
        "acc": d["acc"],
        "val_acc": d["val_acc"],
        "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else 1,
        "report": d["report"],
    }
    figure = record_figure(record, path.stem)
    figure.savefig(path.with_suffix(".png"), dpi=110, bbox_inches="tight")
    return figure


def main(argv: list[str] | None = None) -> int:
    """``python -m casebook.redshift convert FOLDER --trust-pickle``: attributes32.npy → attributes32.npz."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m casebook.redshift",
        description="Convert the survey's pickled attributes32.npy into "
        "attributes32.npz of typed columns (loads without pickle).",
    )
    parser.add_argument("command", choices=["convert"])
    parser.add_argument("folder", type=Path, help="the folder holding attributes32.npy")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: the file is unpickled, so use it only for files you produced",
    )
    args = parser.parse_args(argv)
    try:
        out = convert_attributes(args.folder, trust_pickle=args.trust_pickle)
    except (DataFormatError, DataNotFoundError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
