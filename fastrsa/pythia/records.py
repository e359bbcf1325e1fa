"""Reading Pythia's rejection-sampling records (WeightsFragmentation::zIntBreaks/zDblBreaks/pTBreaks).

Stock pythia8mc 8.317 keeps the records in C++ std::vectors that its Python bindings do not expose.
`CtypesRecordReader` reaches them through the object layout of that release; it proves the layout
at start-up (against members the bindings do expose) and `generate` proves the numbers on the first
events of every run (against Pythia's in-situ weights). Any other reader (for instance Pythia 8.318,
whose bindings expose `WeightContainer.weightsFragmentation`) only has to implement `RecordReader`.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from ..errors import PythiaError

SUPPORTED_PYTHIA = "8.317"          # ctypes offsets below are those of this release
SUPPORTED_WHEEL = "8.317.2"

# Byte offsets in Pythia 8.317 (x86-64, libstdc++), see the module docstring.
PYOBJECT_HEADER = 16                # pybind11 instance: C++ pointer right after the PyObject header
INFO_WEIGHT_CONTAINER_PTR = 120     # Info::weightContainerPtr
WC_WEIGHTS_MERGING = 592            # WeightContainer::weightsMerging (exposed: used to prove the layout)
WC_WEIGHTS_USERHOOKS = 1168         # WeightContainer::weightsUserHooks (exposed: idem)
WC_WEIGHTS_FRAGMENTATION = 832      # WeightContainer::weightsFragmentation (not exposed)
WF_ZINT, WF_ZDBL, WF_PT = 160, 184, 208  # the three std::vectors in WeightsFragmentation


def import_pythia():
    """Import pythia8mc lazily, with one clear error when it is missing or not the supported one."""
    try:
        import pythia8mc
    except ImportError as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):     # Ctrl-C while the extension loaded
            raise KeyboardInterrupt from None
        if isinstance(exc, ModuleNotFoundError) and exc.name == "pythia8mc":
            raise PythiaError("pythia8mc is not installed; install it with "
                              f"pip install 'pythia8mc=={SUPPORTED_WHEEL}' (or the 'pythia' extra)") from None
        raise PythiaError(f"pythia8mc is installed but does not import ({exc}); reinstall it with "
                          f"pip install --force-reinstall 'pythia8mc=={SUPPORTED_WHEEL}'") from None
    try:
        wheel = metadata.version("pythia8mc")
    except metadata.PackageNotFoundError:
        wheel = "unknown"
    if not wheel.startswith(SUPPORTED_PYTHIA):
        raise PythiaError(f"pythia8mc {wheel} is not supported: fastrsa reads the records of Pythia "
                          f"{SUPPORTED_PYTHIA}; install it with pip install 'pythia8mc=={SUPPORTED_WHEEL}'")
    return pythia8mc


def pythia_version() -> str:
    try:
        return metadata.version("pythia8mc")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Records:
    """One event's records as Pythia stores them (flat, Pythia's order)."""

    z_int: np.ndarray   # int32 [2 * n_trials]: idOld, idNew per trial
    z_dbl: np.ndarray   # float64 [3 * n_trials]: mT2 (sign: accepted > 0), z, fPrel per trial
    pt: np.ndarray      # float64 [2 * n_breaks]: pT2 (dimensionless), multiplier per break


class RecordReader:
    """Interface: read the records Pythia holds for the event it generated last."""

    def read(self) -> Records:  # pragma: no cover - interface
        raise NotImplementedError


def _cpp_ptr(obj) -> int:
    return ctypes.c_void_p.from_address(id(obj) + PYOBJECT_HEADER).value


def _std_vector(addr: int, ctype, np_dtype) -> np.ndarray:
    begin = ctypes.c_void_p.from_address(addr).value
    end = ctypes.c_void_p.from_address(addr + 8).value
    if not begin or end == begin:
        return np.zeros(0, np_dtype)
    size = ctypes.sizeof(ctype)
    if end < begin or (end - begin) % size:
        raise PythiaError(f"Pythia {pythia_version()}: record vector at {addr:#x} is not a valid "
                          "std::vector; this Pythia build's memory layout is not the supported one")
    # string_at copies the bytes in one C call (building a ctypes array type per read costs ~10x more).
    return np.frombuffer(ctypes.string_at(begin, end - begin), dtype=np_dtype)


def verify_layout(pythia8mc) -> None:
    """Check the WeightContainer layout against members the bindings expose (raises PythiaError)."""
    wc = pythia8mc.WeightContainer()
    base = _cpp_ptr(wc)
    got = (_cpp_ptr(wc.weightsMerging) - base, _cpp_ptr(wc.weightsUserHooks) - base)
    if got != (WC_WEIGHTS_MERGING, WC_WEIGHTS_USERHOOKS):
        raise PythiaError(f"Pythia {pythia_version()}: WeightContainer layout differs from Pythia "
                          f"{SUPPORTED_PYTHIA} (weightsMerging/weightsUserHooks at {got}); install "
                          f"pythia8mc=={SUPPORTED_WHEEL}")


class CtypesRecordReader(RecordReader):
    """Reads the live WeightsFragmentation vectors of an initialized `pythia8mc.Pythia`."""

    def __init__(self, pythia, pythia8mc):
        verify_layout(pythia8mc)
        info = pythia.infoPython()      # a copy of Info, whose weightContainerPtr is the live one
        wc = ctypes.c_void_p.from_address(_cpp_ptr(info) + INFO_WEIGHT_CONTAINER_PTR).value
        if not wc:
            raise PythiaError(f"Pythia {pythia_version()}: Info::weightContainerPtr is null; "
                              "initialize Pythia before reading records")
        self._wf = wc + WC_WEIGHTS_FRAGMENTATION
        self._pythia = pythia           # keep the owner alive while we hold raw addresses

    def read(self) -> Records:
        rec = Records(_std_vector(self._wf + WF_ZINT, ctypes.c_int32, np.int32),
                      _std_vector(self._wf + WF_ZDBL, ctypes.c_double, np.float64),
                      _std_vector(self._wf + WF_PT, ctypes.c_double, np.float64))
        if 3 * len(rec.z_int) != 2 * len(rec.z_dbl) or len(rec.pt) % 2:
            raise PythiaError(f"Pythia {pythia_version()}: record vectors have inconsistent sizes "
                              f"({len(rec.z_int)}, {len(rec.z_dbl)}, {len(rec.pt)}); the memory "
                              "layout is not the supported one")
        return rec


def make_reader(pythia, pythia8mc) -> RecordReader:
    return CtypesRecordReader(pythia, pythia8mc)
