"""Redshift reliability (case study 4), one family per module: catalogue, simulate, files, dataset, baselines,
seed_api. The seed project's documented API — ``load_processed`` / ``load_dataset`` (11 items), ``make_CNN`` /
``make_CNNGRU`` / ``make_CNNLSTM``, ``save_in_dict`` (JSON) and ``fig`` — is importable from here, as its users
know it (``from casebook.redshift import load_dataset``): the one facade of the package.

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

from .seed_api import fig, load_dataset, load_processed, make_CNN, make_CNNGRU, make_CNNLSTM, save_in_dict

__all__ = ["fig", "load_dataset", "load_processed", "make_CNN", "make_CNNGRU", "make_CNNLSTM", "save_in_dict"]
