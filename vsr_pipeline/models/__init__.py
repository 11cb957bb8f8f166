"""Models: the protocol every network follows, the registry, and the built-in architectures.

Import what you need from the submodules (``models.registry``, ``models.base``); this
package itself imports nothing, so that listing models stays free of torch.
"""
