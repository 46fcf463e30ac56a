"""napari front end of sonolabel: a thin layer over the library (no logic the CLI lacks)."""
