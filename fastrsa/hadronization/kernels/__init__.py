"""Weight kernels over ragged records (flat per-trial arrays + int64 event offsets, no padding).

cpu.py: numba, parallel over events. cuda.py: numba-cuda, one warp per event. Both call the
per-trial math in fastrsa.hadronization.lund, so there is one definition of the physics.
"""
