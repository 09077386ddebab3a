"""The data model: the redshift grid and a catalogue of log-PDFs with their attributes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_GRID = 17908


Z_MAX = 5.0


STATUSES = ("success", "spurious", "mismatch")


FLAG_VALUES = (1, 2, 3, 4, 9)


def make_grid(n: int = N_GRID, z_max: float = Z_MAX) -> np.ndarray:
    """17,908 redshifts uniform in ln(1+z) from 0 to ``z_max`` (step ≈ 1.0e-4 in ln(1+z))."""
    return np.expm1(np.linspace(0.0, np.log1p(z_max), n)).astype(np.float32)


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


def data_fingerprint(d: RedshiftData) -> str:
    """A short hash of what a split depends on (object ids, redshifts, ΔZ, status, flags, grid size)."""
    import hashlib

    h = hashlib.sha256()
    h.update(repr(d.log_pdf.shape).encode())
    for col in (0, 1, 2, 3, 5, -1):
        h.update("\x1f".join(map(str, d.attributes[:, col])).encode())
    return h.hexdigest()[:16]
