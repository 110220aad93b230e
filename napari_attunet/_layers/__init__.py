"""The pure logic behind the widgets, in plain numpy and Python: no Qt, no napari import.

* :mod:`.links`: how result layers find their photo (metadata identifiers, names);
* :mod:`.inputs`: checks on image and label layers, 2D planes, training pairs;
* :mod:`.results`: the result layers as napari LayerDataTuples;
* :mod:`.measurements`: measuring edited labels, the result text, the CSV export.

The widgets, the writers and ``demo --view`` share these functions, and tests call them
without a viewer or a thread.
"""
