"""TrialBatch: a dataset's records as tensors, with every base-point term computed once."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DatasetError
from ..params import BaseParams
from .flavours import flavour_class, flavour_table
from .kernels import cpu as cpu_kernels


@dataclass
class TrialBatch:
    """Flat per-trial tensors plus int64 event offsets (no padding), on one device.

    Per trial: z, mt2 (signed: > 0 accepted), cls (flavour class, int8), lfb = log f_B(z) and
    lfB = log F_B = log(f_B(z) / (fPrel zHead)). Per event: n_breaks and sum_pt2 (the pT weight
    depends on the pT records only through these). `table` maps a flavour class to its shape shifts.
    """

    base: BaseParams
    offsets: torch.Tensor
    z: torch.Tensor
    mt2: torch.Tensor
    cls: torch.Tensor
    lfb: torch.Tensor
    lfB: torch.Tensor
    table: torch.Tensor
    n_breaks: torch.Tensor
    sum_pt2: torch.Tensor

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def device(self) -> torch.device:
        return self.z.device

    @property
    def n_trials(self) -> int:
        return int(self.z.shape[0])

    def to(self, device) -> "TrialBatch":
        kw = {f: getattr(self, f).to(device) for f in ("offsets", "z", "mt2", "cls", "lfb", "lfB", "table",
                                                       "n_breaks", "sum_pt2")}
        return TrialBatch(base=self.base, **kw)

    @classmethod
    def from_dataset(cls, ds, device="cpu") -> "TrialBatch":
        if len(ds) == 0:
            raise DatasetError(f"{ds.path}: holds no events; there is nothing to reweight (generate events "
                               "into it first)")
        return cls.from_flat(ds.flat(groups=("trials", "breaks")), ds.base, device)

    @classmethod
    def from_flat(cls, fv, base: BaseParams, device="cpu") -> "TrialBatch":
        """From a dataset's FlatView (trials and breaks groups) and its base point."""
        return cls.from_arrays(base, fv.offsets["trials"], fv["z"], fv["fprel"], fv["mt2"], fv["id_old"],
                               fv["id_new"], fv.offsets["breaks"], fv["pt2"], device=device)

    @classmethod
    def from_arrays(cls, base: BaseParams, trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2,
                    device="cpu") -> "TrialBatch":
        trial_offsets = np.ascontiguousarray(trial_offsets, np.int64)
        break_offsets = np.ascontiguousarray(break_offsets, np.int64)
        z, fprel, mt2, pt2 = (np.ascontiguousarray(x, np.float64) for x in (z, fprel, mt2, pt2))
        _check_records(trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2)
        c = flavour_class(np.asarray(id_old), np.asarray(id_new))
        table = flavour_table(base)
        lfb = np.empty_like(z)
        lfB = np.empty_like(z)
        cpu_kernels.base_terms(z, mt2, fprel, c, table, base.a, base.b, math.log(base.z_head), lfb, lfB)
        if np.any(lfB[mt2 < 0] >= 0):
            raise DatasetError("fprel: a rejected trial has f_B(z) >= fPrel zHead (acceptance >= 1); the "
                               "records do not match the dataset's base parameters")
        n_br = np.empty(len(break_offsets) - 1)
        s_pt2 = np.empty(len(break_offsets) - 1)
        cpu_kernels.pt_sums(break_offsets, pt2, n_br, s_pt2)
        # Arrow-backed arrays are read-only; torch needs writable memory, so those are copied once.
        t = lambda x: torch.from_numpy(x if x.flags.writeable else x.copy()).to(device)  # noqa: E731
        return cls(base, t(trial_offsets), t(z), t(mt2), t(c), t(lfb), t(lfB), t(table), t(n_br), t(s_pt2))


MAX_MT2 = 1e10      # [GeV^2] no hadron of a string below 100 TeV has a larger transverse mass squared
MAX_PT2 = 1e6       # dimensionless Gaussian pT^2 (a 1000-sigma break: not from Pythia)


def _check_offsets(name: str, off, n_values: int, n_events: int | None) -> None:
    if n_events is not None and len(off) - 1 != n_events:
        raise DatasetError(f"{name}: {len(off) - 1} events of offsets but {n_events} events of trials")
    if len(off) == 0 or off[0] != 0 or off[-1] != n_values or np.any(np.diff(off) < 0):
        raise DatasetError(f"{name}: offsets must start at 0, be non-decreasing and end at the number of "
                           f"values ({n_values}); the records are corrupt")


def _check_records(off, z, fprel, mt2, id_old, id_new, boff, pt2) -> None:
    """Every array checked before a kernel reads it; a bad value names its event and the fix."""
    _check_offsets("offsets (trials)", off, len(z), None)
    _check_offsets("break offsets (pt2)", boff, len(pt2), len(off) - 1)
    for name, arr in (("fprel", fprel), ("mt2", mt2), ("id_old", id_old), ("id_new", id_new)):
        if len(arr) != len(z):
            raise DatasetError(f"{name}: {len(arr)} entries but z has {len(z)}")

    def where(bad, offsets, unit):
        k = int(np.argmax(bad))
        return f"{unit} {k} (event {int(np.searchsorted(offsets, k, side='right')) - 1})"

    checks = [("z", z, (z > 0) & (z < 1), "outside (0, 1)", off, "trial"),
              ("fprel", fprel, np.isfinite(fprel) & (fprel > 0), "must be > 0", off, "trial"),
              ("mt2", mt2, np.isfinite(mt2) & (mt2 != 0) & (np.abs(mt2) < MAX_MT2),
               f"must be finite, != 0 and |mt2| < {MAX_MT2:g} GeV^2", off, "trial"),
              ("pt2", pt2, np.isfinite(pt2) & (pt2 >= 0) & (pt2 < MAX_PT2), f"must be in [0, {MAX_PT2:g})", boff,
               "record")]
    for name, arr, ok, rule, offsets, unit in checks:      # (a NaN fails every comparison)
        if not ok.all():
            raise DatasetError(f"{name}: {where(~ok, offsets, unit)} has {name} = {float(arr[~ok][0])!r}; {rule}; the "
                               "records are corrupt (regenerate the shard)")
