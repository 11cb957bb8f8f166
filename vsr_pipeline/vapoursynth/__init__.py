"""VapourSynth driver: vsrpipe as a filter in VapourSynth scripts, and a source through our reader.

::

    import vapoursynth as vs
    from vsr_pipeline.vapoursynth import enhance
    clip = vs.core.bs.VideoSource("in.mp4")
    clip = enhance(clip, scale=4, adapt="online", degradation="estimate")
    clip.set_output()

:func:`enhance` takes the clip's own format (YUV 8–16 bit, GRAY, RGB24/48, RGBS, RGBH) and
returns the same family and bit depth (or RGBS on request), frame properties kept; a
frame's output never depends on the order or the thread in which VapourSynth asks for it.
:func:`source` reads a file through vsrpipe's own PyAV reader (exact colour, rotation,
VFR durations as frame properties) for scripts without a source plugin.
"""

from vsr_pipeline.vapoursynth.filter import enhance
from vsr_pipeline.vapoursynth.source import source

__all__ = ["enhance", "source"]
