"""Streaming video I/O: probe, reader, windows, writer, colour conversion."""

from vsr_pipeline.io.probe import VideoInfo, probe
from vsr_pipeline.io.reader import Frame, VideoReader
from vsr_pipeline.io.windows import windows
from vsr_pipeline.io.writer import EncodeOptions, VideoWriter

__all__ = ["EncodeOptions", "Frame", "VideoInfo", "VideoReader", "VideoWriter", "probe", "windows"]
