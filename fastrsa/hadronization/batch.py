"""TrialBatch: a dataset's records as tensors, with every base-point term computed once."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DatasetError
from ..params import BaseParams, FlavourBase
from ..store.flavour import N_FLAV, has_flavour, meta_flavour_base
from .flavours import flavour_class, flavour_table
from .kernels import cpu as cpu_kernels


@dataclass
class TrialBatch:
    """A dataset's records as compact tensors, with every base-point term computed once, on one device.

    Per trial (20 bytes): z (float64), qB = F_B / (1 - F_B), the odds of acceptance at the base, with F_B =
    f_B(z) / (fPrel zHead) < 1, for a rejected trial and -1 for an accepted one (the sign carries the accept
    flag), and
    `hadron` (int32), the index of the trial's z sampling. Per z sampling (every trial of one hadron shares
    them): h_start [H + 1] (int64), where its trials start, h_m = its transverse mass squared, h_cls = its
    flavour class (int8, a row of `table`) and h_base [H, 5], the coefficients of log f_B(z) = b0 + bI/z +
    bL log z + bM log(1 - z) at the base point (lund.log_f_coeffs, computed once) and a flag, 1 where some
    trial's log f_B comes within 1 of Pythia's clamp at -+EXPMAX (both kernels test the base's clamp only
    there): 57 bytes per z sampling, about 3.1 per trial. An event's z samplings are consecutive, its
    trials' in order. Per event: int64 `offsets` into the trials, n_breaks and sum_pt2 (the pT weight
    depends on the pT records only through these). log f_B(z) and zMax at theta are recomputed by the
    kernels (docs/weights.md says why this is exact).
    Flavour records (format 3, when the dataset has them): `flav` [N, 13] float64 (Pythia's flavour-choice
    counts per event; exact integers) and `flavour`, their base point; both None otherwise, and
    `flavour_missing` then says why (the one-line error a flavour parameter gets).
    """

    base: BaseParams
    offsets: torch.Tensor
    z: torch.Tensor
    qB: torch.Tensor
    hadron: torch.Tensor
    h_start: torch.Tensor
    h_m: torch.Tensor
    h_cls: torch.Tensor
    h_base: torch.Tensor
    table: torch.Tensor
    n_breaks: torch.Tensor
    sum_pt2: torch.Tensor
    flav: torch.Tensor | None = None
    flavour: FlavourBase | None = None
    flavour_missing: str = "this batch has no flavour records"
    feat: torch.Tensor | None = None

    FIELDS = ("offsets", "z", "qB", "hadron", "h_start", "h_m", "h_cls", "h_base", "table", "n_breaks", "sum_pt2")

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def device(self) -> torch.device:
        return self.z.device

    @property
    def n_trials(self) -> int:
        return int(self.z.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the batch's tensors."""
        opt = [x for x in (self.flav, self.feat) if x is not None]
        return sum(x.element_size() * x.numel() for x in [getattr(self, f) for f in self.FIELDS] + opt)

    def to(self, device) -> "TrialBatch":
        return TrialBatch(base=self.base, **{f: getattr(self, f).to(device) for f in self.FIELDS},
                          flav=None if self.flav is None else self.flav.to(device), flavour=self.flavour,
                          flavour_missing=self.flavour_missing,
                          feat=None if self.feat is None else self.feat.to(device))

    def with_features(self) -> "TrialBatch":
        """The same batch plus per-trial features `feat` [T, 3]: 1/z, log z and log(1 - z), computed once (24
        more bytes per trial). The kernels then skip those functions at every call; the CPU kernel's weights
        and gradients are the same to the bit (docs/weights.md: the trade-off)."""
        if self.feat is not None:
            return self
        feat = np.empty((self.n_trials, 3), np.float64)
        cpu_kernels.trial_features(self.z.cpu().numpy(), feat)
        return dataclasses.replace(self, feat=torch.from_numpy(feat).to(self.device))

    @classmethod
    def from_dataset(cls, ds, device="cpu", prefetch: bool = True) -> "TrialBatch":
        """Shard by shard, reading only the trial and break columns: the peak while loading is the batch
        itself plus two shards' columns (the next one is read while this one is processed), never a second
        copy of the whole dataset. `prefetch=False` reads each shard only when the last one is done (one
        shard's columns held)."""
        if len(ds) == 0:
            raise DatasetError(f"{ds.path}: holds no events; there is nothing to reweight (generate events "
                               "into it first)")
        import pyarrow as pa
        flavour, missing = _flavour_of(ds.meta, str(ds.path))
        builder = _Builder(ds.base, ds.n_trials())
        groups = ("trials", "breaks", "flavour") if flavour is not None else ("trials", "breaks")
        for fv in ds.iter_flat(groups=groups, prefetch=prefetch):      # the next shard is read meanwhile
            builder.add(fv.offsets["trials"], fv["z"], fv["fprel"], fv["mt2"], fv["id_old"], fv["id_new"],
                        fv.offsets["breaks"], fv["pt2"],
                        flav_counts=None if flavour is None else _counts_of(fv, str(ds.path)))
            del fv
            pa.default_memory_pool().release_unused()      # hand the shard's buffers back before the next
        return builder.finish(device, flavour, missing)

    @classmethod
    def from_flat(cls, fv, base: BaseParams, device="cpu", meta: dict | None = None,
                  where: str = "dataset") -> "TrialBatch":
        """From a dataset's FlatView (trials and breaks groups, and the flavour group when the dataset's
        metadata `meta` says it has flavour records) and its base point."""
        flavour, missing = _flavour_of(meta, where) if meta is not None else (None, "this batch has no flavour records")
        return cls.from_arrays(base, fv.offsets["trials"], fv["z"], fv["fprel"], fv["mt2"], fv["id_old"],
                               fv["id_new"], fv.offsets["breaks"], fv["pt2"], device=device,
                               flav_counts=None if flavour is None else _counts_of(fv, where), flavour=flavour,
                               flavour_missing=missing)

    @classmethod
    def from_arrays(cls, base: BaseParams, trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2,
                    device="cpu", flav_counts=None, flavour: FlavourBase | None = None,
                    flavour_missing: str = "this batch has no flavour records") -> "TrialBatch":
        """`flav_counts` [N, 13] and `flavour` (their base) give the batch flavour records."""
        if (flav_counts is None) != (flavour is None):
            raise DatasetError("flav_counts: give the flavour counts and their base (flavour) together")
        builder = _Builder(base, len(z))
        builder.add(trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2, flav_counts=flav_counts)
        return builder.finish(device, flavour, flavour_missing)


def _flavour_of(meta: dict, where: str) -> tuple:
    """(FlavourBase or None, why there is none) from a dataset's metadata."""
    if not has_flavour(meta):
        try:
            meta_flavour_base(meta, where)
        except DatasetError as exc:
            return None, str(exc)
    fb = meta_flavour_base(meta, where)
    fb.check_reweightable(where="flavour base")
    return fb, ""


def _counts_of(fv, where: str) -> np.ndarray:
    """[N, 13] counts from a flat view's flavour group: every event must hold Pythia's 13 counters."""
    if "flav_breaks" not in fv.values:
        raise DatasetError(f"{where}: the flat view lacks the flavour group; read it with "
                           "ds.flat(groups=('trials', 'breaks', 'flavour'))")
    off = np.asarray(fv.offsets["flavour"])
    n = len(fv.offsets["trials"]) - 1
    if len(off) != n + 1 or np.any(np.diff(off) != N_FLAV):
        raise DatasetError(f"{where}: flav_breaks must hold {N_FLAV} counters for every event; the flavour "
                           "records are incomplete (regenerate the shard)")
    return np.asarray(fv["flav_breaks"]).reshape(n, N_FLAV)


def z_samplings(offsets, mt2, cls) -> np.ndarray:
    """Start flags of the z samplings: a trial starts one at an event's start, after an accepted trial, or
    where |mT2| or the flavour class changes (Pythia samples one hadron's z at fixed mT2 and flavours until
    a trial is accepted; the last two conditions only guard that assumption, so grouping is always exact)."""
    n = len(mt2)
    new = np.ones(n, bool)
    if n > 1:
        m = np.abs(mt2)
        new[1:] = (mt2[:-1] > 0) | (m[1:] != m[:-1]) | (cls[1:] != cls[:-1])
    starts = offsets[:-1][offsets[:-1] < n]
    new[starts] = True
    return new


class _Builder:
    """Accumulates chunks of records (a whole dataset, shard by shard) into one compact TrialBatch."""

    def __init__(self, base: BaseParams, n_trials: int):
        """n_trials: the number of trials, or an upper bound of it."""
        self.base = base
        self.table = flavour_table(base)
        self.z = np.empty(n_trials, np.float64)
        self.qB = np.empty(n_trials, np.float64)
        self.hadron = np.empty(n_trials, np.int32)
        self.h_m, self.h_cls, self.offsets, self.n_br, self.s_pt2 = [], [], [np.zeros(1, np.int64)], [], []
        self.h_start, self.h_flag = [], []
        self.flav = []
        self.t, self.h, self.events = 0, 0, 0

    def add(self, trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2, flav_counts=None) -> None:
        trial_offsets = np.ascontiguousarray(trial_offsets, np.int64)
        break_offsets = np.ascontiguousarray(break_offsets, np.int64)
        z, fprel, mt2, pt2 = (np.ascontiguousarray(x, np.float64) for x in (z, fprel, mt2, pt2))
        _check_records(trial_offsets, z, fprel, mt2, id_old, id_new, break_offsets, pt2, self.events)
        n, t = len(z), self.t
        if t + n > len(self.z):
            raise DatasetError(f"the records hold more trials than the dataset's metadata says ({len(self.z)}); "
                               "the dataset is corrupt")
        c = flavour_class(np.asarray(id_old), np.asarray(id_new))
        b = self.base
        new = z_samplings(trial_offsets, mt2, c)
        first = np.flatnonzero(new)
        h_m, h_cls = np.abs(mt2[first]), c[first]
        q = self.qB[t:t + n]
        flag = np.empty(len(first), np.int8)
        if cpu_kernels.sampling_base(z, mt2, fprel, np.append(first, n), h_m, h_cls, self.table, b.a, b.b,
                                     math.log(b.z_head), q, flag) > 0:
            k = int(np.argmax((mt2 < 0) & ~((q >= 0) & (q < np.inf))))
            raise DatasetError(f"fprel: trial {k} (event {self.events + _event_of(trial_offsets, k)}) is rejected "
                               "but has f_B(z) >= fPrel zHead to double precision (acceptance >= 1); the records "
                               "do not match the dataset's base parameters")
        self.z[t:t + n] = z
        self.hadron[t:t + n] = np.cumsum(new, dtype=np.int64).astype(np.int32) - 1 + self.h
        self.h_start.append(first + t)
        self.h_m.append(h_m)
        self.h_cls.append(h_cls)
        self.h_flag.append(flag)
        n_br = np.empty(len(break_offsets) - 1)
        s_pt2 = np.empty(len(break_offsets) - 1)
        cpu_kernels.pt_sums(break_offsets, pt2, n_br, s_pt2)
        self.n_br.append(n_br)
        self.s_pt2.append(s_pt2)
        if flav_counts is not None:
            counts = np.asarray(flav_counts)
            if counts.shape != (len(trial_offsets) - 1, N_FLAV):
                raise DatasetError(f"flav_counts: shape {counts.shape}; expected [{len(trial_offsets) - 1}, {N_FLAV}]")
            if not np.all(counts >= 0):
                raise DatasetError("flav_counts: negative counts; the flavour records are corrupt")
            self.flav.append(counts.astype(np.float64))
        self.offsets.append(trial_offsets[1:] + t)
        self.t, self.h, self.events = t + n, self.h + len(first), self.events + len(trial_offsets) - 1
        if self.h >= 2**31:
            raise DatasetError("more than 2^31 z samplings in one batch; split the dataset")

    def finish(self, device, flavour: FlavourBase | None = None,
               flavour_missing: str = "this batch has no flavour records") -> TrialBatch:
        t = self.t      # n_trials was an upper bound when it came from Parquet metadata: views of the first t
        cat = lambda parts, dt: np.concatenate(parts).astype(dt, copy=False) if parts else np.zeros(0, dt)  # noqa: E731
        arrays = dict(offsets=cat(self.offsets, np.int64), z=self.z[:t], qB=self.qB[:t], hadron=self.hadron[:t],
                      h_m=cat(self.h_m, np.float64), h_cls=cat(self.h_cls, np.int8), table=self.table,
                      n_breaks=cat(self.n_br, np.float64), sum_pt2=cat(self.s_pt2, np.float64))
        arrays["h_start"] = np.concatenate(self.h_start + [np.array([t], np.int64)]).astype(np.int64)
        h_base = np.empty((len(arrays["h_m"]), 5), np.float64)
        cpu_kernels.sampling_base_coeffs(arrays["h_m"], arrays["h_cls"], self.table, self.base.a, self.base.b, h_base)
        h_base[:, 4] = cat(self.h_flag, np.int8)
        arrays["h_base"] = h_base
        flav = None
        if flavour is not None:
            flavour.check_reweightable(where="flavour base")
            flav = torch.from_numpy(cat(self.flav, np.float64).reshape(-1, N_FLAV)).to(device)
        return TrialBatch(self.base, **{k: torch.from_numpy(v).to(device) for k, v in arrays.items()},
                          flav=flav, flavour=flavour, flavour_missing=flavour_missing)


def _event_of(offsets, k: int) -> int:
    return int(np.searchsorted(offsets, k, side="right")) - 1


MAX_MT2 = 1e10      # [GeV^2] no hadron of a string below 100 TeV has a larger transverse mass squared
MAX_PT2 = 1e6       # dimensionless Gaussian pT^2 (a 1000-sigma break: not from Pythia)


def _check_offsets(name: str, off, n_values: int, n_events: int | None) -> None:
    if n_events is not None and len(off) - 1 != n_events:
        raise DatasetError(f"{name}: {len(off) - 1} events of offsets but {n_events} events of trials")
    if len(off) == 0 or off[0] != 0 or off[-1] != n_values or np.any(np.diff(off) < 0):
        raise DatasetError(f"{name}: offsets must start at 0, be non-decreasing and end at the number of "
                           f"values ({n_values}); the records are corrupt")


def _check_records(off, z, fprel, mt2, id_old, id_new, boff, pt2, first_event: int = 0) -> None:
    """Every array checked before a kernel reads it; a bad value names its event and the fix."""
    _check_offsets("offsets (trials)", off, len(z), None)
    _check_offsets("break offsets (pt2)", boff, len(pt2), len(off) - 1)
    for name, arr in (("fprel", fprel), ("mt2", mt2), ("id_old", id_old), ("id_new", id_new)):
        if len(arr) != len(z):
            raise DatasetError(f"{name}: {len(arr)} entries but z has {len(z)}")

    def where(bad, offsets, unit):
        k = int(np.argmax(bad))
        return f"{unit} {k} (event {first_event + _event_of(offsets, k)})"

    checks = [("z", z, (z >= np.finfo(np.float64).tiny) & (z < 1), "outside (0, 1)", off, "trial"),  # normal z
              ("fprel", fprel, np.isfinite(fprel) & (fprel > 0), "must be > 0", off, "trial"),
              ("mt2", mt2, np.isfinite(mt2) & (mt2 != 0) & (np.abs(mt2) < MAX_MT2),
               f"must be finite, != 0 and |mt2| < {MAX_MT2:g} GeV^2", off, "trial"),
              ("pt2", pt2, np.isfinite(pt2) & (pt2 >= 0) & (pt2 < MAX_PT2), f"must be in [0, {MAX_PT2:g})", boff,
               "record")]
    for name, arr, ok, rule, offsets, unit in checks:      # (a NaN fails every comparison)
        if not ok.all():
            raise DatasetError(f"{name}: {where(~ok, offsets, unit)} has {name} = {float(arr[~ok][0])!r}; {rule}; the "
                               "records are corrupt (regenerate the shard)")
