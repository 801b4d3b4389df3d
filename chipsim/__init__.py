"""chipsim: a cycle-level simulator of a mixed-signal neuromorphic chip with on-chip LTL learning.

Python API (docs/api.md): `load_net`, `deploy` (-> a DeployedChip with `evaluate`, `calibrate`,
`save`, `export_nir`), `sweep`, and `import_nir` / `export_nir` for NIR graphs.
"""

__version__ = "0.1.0"

__all__ = ["load_net", "deploy", "sweep", "import_nir", "export_nir", "DeployedChip", "Result", "Calibration",
           "Counters"]


def __getattr__(name):
    # the API loads numba and the kernels: import it on first use, so `import chipsim` stays light
    if name in ("load_net", "deploy", "sweep", "DeployedChip", "Result", "Calibration"):
        from chipsim import api

        return getattr(api, name)
    if name == "Counters":
        from chipsim.architect.labelled import Counters

        return Counters
    if name == "import_nir":
        from chipsim.interchange.nir_import import import_nir

        return import_nir
    if name == "export_nir":
        from chipsim.interchange.nir_export import export_nir

        return export_nir
    raise AttributeError(f"module 'chipsim' has no attribute {name!r}")
