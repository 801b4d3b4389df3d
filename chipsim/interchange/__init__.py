"""Exchange of networks with other tools: NIR (the Neuromorphic Intermediate Representation) in and out.

* `nir_chain`  reads a NIR file and orders its nodes into the feed-forward chain a chip can map;
* `grid`       turns one layer's real-valued parameters into chip integers (exact where they allow it);
* `nir_import` maps a chain onto a chipsim net YAML and an HDF5 weights file (`chipsim import-nir`);
* `nir_export` writes a deployed or calibrated chip as a NIR graph in real units (`chipsim export-nir`).
"""
