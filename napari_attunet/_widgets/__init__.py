"""napari dock widgets (Qt lives only in this sub-package)."""
