"""Kernel estimation: the blur (SR) kernel of each scene of a low-resolution clip.

The stage behind ``--degradation estimate`` and ``vsrpipe estimate-kernel``. Three
estimators read a scene's kernel from its LR frames alone: the learned blur estimator
(:mod:`~vsr_pipeline.kernels.learned`, the command line's default), the closed-form
spectral fit (:mod:`~vsr_pipeline.kernels.spectral`, :class:`KernelEstimator`'s default in
Python) and KernelGAN (:mod:`~vsr_pipeline.kernels.kernelgan`, networks in
:mod:`~vsr_pipeline.kernels.kernelgan_nets`). All return a
:class:`~vsr_pipeline.kernels.base.KernelEstimate`, the bicubic kernel with a reason when a
scene cannot be read. :mod:`~vsr_pipeline.kernels.estimate` picks the estimator from its
config and caches per scene (:class:`~vsr_pipeline.kernels.estimate.KernelEstimator`);
:mod:`~vsr_pipeline.kernels.metrics` holds the kernel math (moments, bicubic kernel,
errors, pictures). See docs/kernel-estimation.md.

Nothing is imported here, so ``import vsr_pipeline.kernels`` stays cheap: import the
submodule you need.
"""

__all__ = ["base", "estimate", "kernelgan", "kernelgan_nets", "learned", "metrics", "spectral"]
