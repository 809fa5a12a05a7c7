"""``actionkit.export``: turning trained models into deployable artifacts (ONNX, TensorRT).

Stripping Rev2Net decoders and the ONNX / TensorRT exporters land here (see the project's issues);
this subpackage is installed from the repository's top-level ``export/`` folder.
"""
