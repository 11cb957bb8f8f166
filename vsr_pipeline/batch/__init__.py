"""Batch processing: folders of footage, a crash-proof manifest, resumable segments, local or Ray workers.

``manifest`` (SQLite, one transaction per state change) · ``plan`` (the walk of IN_DIR, the
settings hash) · ``segments`` (plan, encode and join the segments of a long file) ·
``jobs`` (the units of work and the one function that runs them) · ``runner`` (the
driver) · ``local`` and ``ray_engine`` (the engines) · ``resume`` (``enhance --resume``) ·
``faults`` (kill points for the crash tests). See docs/batch.md.
"""
