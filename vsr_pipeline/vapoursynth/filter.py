"""``enhance(clip, ...)``: the enhancement stage as a VapourSynth filter.

How it stays correct when VapourSynth asks for frames from several threads and in any
order:

- The clip is analysed once when the filter is built (outside any frame request): scene
  cuts (from ``_SceneChangePrev``/``_SceneChangeNext`` when the clip has them, else the
  CLI's detector on every frame) and, with ``degradation="estimate"``, each scene's kernel
  from the window of the scene's first frame, as the CLI estimates it. That costs one
  decode of the clip up front (see docs/vapoursynth.md).
- Every frame request receives the frames it needs as inputs of ``std.ModifyFrame`` (the
  window n-2 … n+2; with online adaptation also the earlier frames the stage would replay),
  so the filter never calls ``get_frame`` from inside a request.
- The stage serialises its passes with a lock; online adaptation keeps a snapshot of every
  frame's weights (the last 64) so that replays stay short, and frame n's weights are a
  pure function of its scene's frames up to n: the output is bit-identical in any order.
"""

from __future__ import annotations

import bisect
import dataclasses
import numbers
import threading
from fractions import Fraction

import numpy as np
import vapoursynth as vs

from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.config import default as adapt_default
from vsr_pipeline.config import EDGES, EnhanceConfig, RunnerConfig, StageConfig, field_default
from vsr_pipeline.errors import VsrError
from vsr_pipeline.io.windows import RADIUS, window_indices
from vsr_pipeline.vapoursynth.formats import check_clip, check_output_size, colour_info, fail, from_rgbs, to_rgbs

core = vs.core
_ADAPT_OPTIONS = {f.name for f in dataclasses.fields(AdaptConfig)} - {"method", "degradation", "kernel_method"}


def enhance(
    clip: vs.VideoNode,
    *,
    model: str = field_default(StageConfig, "model"),
    scale: float = field_default(StageConfig, "scale"),
    adapt: str = adapt_default("method"),
    degradation: str = adapt_default("degradation"),
    kernel_method: str = adapt_default("kernel_method"),
    device: str = field_default(RunnerConfig, "device"),
    half: bool = field_default(RunnerConfig, "half"),
    tile: int = field_default(RunnerConfig, "tile"),
    tile_pad: int = field_default(RunnerConfig, "tile_pad"),
    runtime: str = field_default(RunnerConfig, "runtime"),
    edge: str = field_default(EnhanceConfig, "edge"),
    scene_threshold: float = field_default(EnhanceConfig, "scene_threshold"),
    output: str = "same",
    **adapt_options,
) -> vs.VideoNode:
    """Upscale ``clip`` with vsrpipe's stage; the names and defaults are ``vsrpipe enhance``'s.

    Args:
        clip: YUV (8–16 bit, any subsampling), GRAY, RGB24/RGB48, RGBS or RGBH, constant format and size.
        model, scale, adapt, degradation, kernel_method, device, half, tile, tile_pad, runtime, edge,
            scene_threshold: as the CLI's options of the same names (``runtime``: ``--runtime``).
        output: ``"same"`` (the input's family and bit depth) or ``"RGBS"``.
        **adapt_options: further adaptation settings by their field names in
            :class:`~vsr_pipeline.adapt.config.AdaptConfig` (``steps_per_frame``, ``mc_passes``, ``lr``, ...).

    Returns a clip of round(scale·width) × round(scale·height), same frame count, rates and
    frame properties. Raises ``vs.Error("enhance: …")`` with one sentence for bad input.
    """
    given = {k: v for k, v in locals().items() if k not in ("clip", "adapt_options")}
    check_clip(clip)
    unknown = sorted(set(adapt_options) - _ADAPT_OPTIONS)
    if unknown:
        raise fail(f"unknown option(s) {', '.join(unknown)}; see help(vsr_pipeline.vapoursynth.enhance).")
    _check_types(given, enhance.__annotations__)
    _check_types(adapt_options, {f.name: f.type for f in dataclasses.fields(AdaptConfig)})
    if output not in ("same", "RGBS"):
        raise fail(f"output must be 'same' or 'RGBS', got {output!r}.")
    if edge not in EDGES:
        raise fail(f"edge must be one of {', '.join(EDGES)}, got {edge!r}.")
    try:
        adapt_cfg = AdaptConfig(method=adapt, degradation=degradation, kernel_method=kernel_method, **adapt_options)
        sequential = registry.get(adapt_cfg.method).sequential
        if sequential:  # a snapshot per frame keeps out-of-order replays short; outputs do not change
            adapt_cfg = dataclasses.replace(adapt_cfg, snapshot_every=1)
        config = StageConfig(model=model, scale=scale, runner=RunnerConfig(device=device, half=half, tile=tile, tile_pad=tile_pad, runtime=runtime), adapt=adapt_cfg)
        from vsr_pipeline.enhancer import Enhancer  # imports torch: only when a filter is built

        stage = Enhancer(config)
        out_h, out_w = stage.output_size(clip.height, clip.width)
        stage.check_frame_size(out_w, out_h, flags=("scale", "tile"))  # VapourSynth aborts when a frame cannot be allocated
    except VsrError as exc:
        raise fail(str(exc)) from None
    if output == "same":
        check_output_size(clip, out_w, out_h)
    colour = colour_info(clip)
    rgb = to_rgbs(clip, colour)
    server = _FrameServer(stage, rgb, clip, edge, scene_threshold)
    if sequential:  # a frame's output depends on the frames before it: served through the replaying frame server
        result = core.std.FrameEval(server.blank, server.node_for)
    else:
        result = server.node(range(-RADIUS, RADIUS + 1))
    return result if output == "RGBS" else from_rgbs(result, clip, colour)


_KINDS = {"int": (numbers.Integral, "an integer"), "float": (numbers.Real, "a number"), "bool": (bool, "True or False"), "str": (str, "a string")}


def _check_types(values: dict, annotations: dict) -> None:
    """vs.Error unless each value has the type its annotation names (``"int"``, ``"float | None"``, ...)."""
    for name, value in values.items():
        kinds = [k.strip() for k in str(annotations.get(name, "")).split("|")]
        known = [_KINDS[k] for k in kinds if k in _KINDS]
        if not known or (value is None and "None" in kinds):
            continue
        if isinstance(value, bool) and "bool" not in kinds or not any(isinstance(value, cls) for cls, _ in known):
            want = " or ".join([what for _, what in known] + (["None"] if "None" in kinds else []))
            raise fail(f"{name} must be {want}, got {value!r} (type {type(value).__name__}).")


class _FrameServer:
    """Answers frame requests: windows from the inputs VapourSynth hands over, the stage, props copied."""

    def __init__(self, stage, rgb: vs.VideoNode, original: vs.VideoNode, edge: str, threshold: float) -> None:
        self.stage = stage
        self.rgb = rgb
        self.original = original
        self.edge = edge
        self.n = rgb.num_frames
        self._shifted: dict[int, vs.VideoNode] = {}
        self._inflight: set[int] = set()  # frames whose request is being answered now
        self._done = threading.Condition()
        out_h, out_w = stage.output_size(rgb.height, rgb.width)
        self.blank = core.std.BlankClip(rgb, width=out_w, height=out_h, format=vs.RGBS, keep=True)
        self.starts = _analyse(stage, rgb, original, edge, threshold)
        stage.random_access(None, self.scene_start)

    # --- the scene structure (known from the analysis) --------------------------------------
    def scene_of(self, index: int) -> int:
        return bisect.bisect_right(self.starts, index) - 1

    def scene_start(self, index: int) -> int:
        return self.starts[self.scene_of(index)]

    def _scene_end(self, scene: int) -> int:
        return self.starts[scene + 1] if scene + 1 < len(self.starts) else self.n

    # --- inputs -------------------------------------------------------------------------------
    def shifted(self, k: int) -> vs.VideoNode:
        """A clip whose frame n is the RGB frame n + k (clamped to the clip)."""
        if k not in self._shifted:
            src, n = self.rgb, self.n
            if k == 0:
                node = src
            elif abs(k) >= n:
                node = src[0] * n if k < 0 else src[-1] * n
            elif k > 0:
                node = src[k:] + src[-1] * k
            else:
                node = src[0] * (-k) + src[: n + k]
            self._shifted[k] = node
        return self._shifted[k]

    def node(self, offsets: range, release: bool = False) -> vs.VideoNode:
        """A ModifyFrame whose frame n is the output of frame n, given the RGB frames n + k for k in ``offsets``."""
        inputs = [self.blank, self.original, *(self.shifted(k) for k in offsets)]

        def answer(n: int, f: list) -> vs.VideoFrame:
            try:
                return self._answer(n, f, offsets)
            except VsrError as exc:  # e.g. the model's first output is NaN
                raise fail(str(exc)) from None
            finally:
                if release:
                    self.stage.release(n)

        return core.std.ModifyFrame(self.blank, inputs, answer)

    def node_for(self, n: int) -> vs.VideoNode:
        """FrameEval (online adaptation): a node over the frames frame n needs now (its window and any replay)."""
        need = self.stage.replay_range(n, self.scene_of(n), hold=True)  # released once n is answered
        first = need.start if len(need) else n
        return self.node(range(first - RADIUS - n, RADIUS + 1), release=True)

    def _answer(self, n: int, f: list, offsets: range) -> vs.VideoFrame:
        """f = [output template, original frame n (its props), RGB frames n + k for k in offsets]."""
        import torch

        template, original, frames = f[0], f[1], f[2:]
        rgb = {min(max(n + k, 0), self.n - 1): frame for k, frame in zip(offsets, frames)}
        tensors: dict[int, torch.Tensor] = {}

        def tensor(i: int) -> torch.Tensor:
            if i not in tensors:
                if i not in rgb:
                    raise fail(f"internal: frame {i} was needed for frame {n} but not requested; please report it.")
                tensors[i] = torch.from_numpy(np.stack([np.asarray(rgb[i][p]) for p in range(3)]))  # (3, H, W), a new array
            return tensors[i]

        def window(i: int) -> tuple[torch.Tensor, int]:
            scene = self.scene_of(i)
            s0, e0 = self.starts[scene], self._scene_end(scene)
            idx = window_indices(e0 - s0, i - s0, RADIUS, self.edge)
            return torch.stack([tensor(s0 + j) for j in idx]), scene  # (T, C, H, W)

        win, scene = window(n)
        with self._done:
            # frame n-1 of the same scene being answered by another thread (it waits for nothing but the
            # stage's lock): let it go first, so that online adaptation carries its weights on instead of
            # replaying them (the result is the same either way)
            self._done.wait_for(lambda: n - 1 not in self._inflight or self.scene_of(n - 1) != scene, timeout=60)
            self._inflight.add(n)
        try:
            with self.stage.exclusive():
                self.stage.random_access(window, self.scene_start)
                out = self.stage.process(win[None], [n], [scene])[0].cpu().numpy()  # (3, oH, oW)
        finally:
            with self._done:
                self._inflight.discard(n)
                self._done.notify_all()
        fout = template.copy()
        for p in range(3):
            np.copyto(np.asarray(fout[p]), out[p])
        props = dict(original.props)
        for key in ("_Matrix", "_Range", "_ColorRange", "_ChromaLocation"):
            props.pop(key, None)  # the output is RGB here; the final conversion writes these
        fout.props.update(props)
        fout.props["_Matrix"], fout.props["_Range"] = 0, 1
        return fout


def _analyse(stage, rgb: vs.VideoNode, original: vs.VideoNode, edge: str, threshold: float) -> list[int]:
    """Scene starts of the clip (always [0, …]); primes each scene's kernel estimate when it needs one."""
    import torch

    first = original.get_frame(0).props
    use_props = "_SceneChangePrev" in first or "_SceneChangeNext" in first
    estimate = stage.estimates_kernels
    if not use_props and threshold <= 0 and not estimate:
        return [0]
    detector = None
    if not use_props and threshold > 0:
        from vsr_pipeline.io.scenes import SceneConfig, SceneDetector

        fps = float(Fraction(rgb.fps.numerator, rgb.fps.denominator)) if rgb.fps.numerator else 25.0
        detector = SceneDetector(SceneConfig(threshold=threshold), fps=fps)
    starts: list[int] = [0]
    head: list[torch.Tensor] = []  # the current scene's first frames, for its kernel estimate

    def prime(scene_frames: list[torch.Tensor], scene: int) -> None:
        # the window of the scene's first frame, which the CLI's first request of the scene hands the estimator
        idx = window_indices(len(scene_frames), 0, RADIUS, edge)
        stage.estimate_scene(scene, torch.stack([scene_frames[j] for j in idx]))

    prev_next = False
    prev = None
    source = zip(rgb.frames(), original.frames()) if use_props else ((f, None) for f in rgb.frames())
    for i, (frame, orig) in enumerate(source):
        cur = torch.from_numpy(np.stack([np.asarray(frame[p]) for p in range(3)]))
        cut = False
        if i > 0:
            if use_props:
                cut = bool(orig.props.get("_SceneChangePrev", 0)) or prev_next
            elif detector is not None:
                cut = detector(prev, cur)
        if use_props:
            prev_next = bool(orig.props.get("_SceneChangeNext", 0))
        if cut:
            if estimate:
                prime(head, len(starts) - 1)
            starts.append(i)
            head = []
        if estimate and len(head) <= RADIUS:
            head.append(cur)
        prev = cur
    if estimate:
        prime(head, len(starts) - 1)
    return starts
