"""casebook: the small, tested package behind the case-study notebooks.

Import the submodules you need (``casebook.config``, ``casebook.data``, ``casebook.report`` ...);
nothing heavy (torch, TensorFlow, MLflow) is imported by this file.
"""

__version__ = "0.1.0"
