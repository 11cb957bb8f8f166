"""Streaming video I/O: probe, reader, windows, scenes, colour conversion, writer, files, transcode.

Import from the submodules (``vsr_pipeline.io.reader``, ``vsr_pipeline.io.files``, ...);
this package imports nothing itself, so that light modules (path checks) stay light.
"""
