"""The documented simulator of redshift-probability curves (the survey's files are not public)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import config
from .catalogue import Z_MAX, RedshiftData, make_grid

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
    it = config.progress(range(n), desc="simulating PDFs") if progress else range(n)
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
