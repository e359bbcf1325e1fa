"""Recording a user's own event loop: the same record reader and shard writer as `fastrsa generate`.

    rec = fastrsa.Recorder(pythia, "out", shard_events=10000)    # an initialized pythia8mc.Pythia
    for _ in range(n):
        if pythia.next():
            rec.append()
    rec.close()                                                   # or: with fastrsa.Recorder(...) as rec:

The Pythia must have been initialized with VariationFrag:z = on and VariationFrag:pT = on (checked).
The record layout is checked against the members the bindings expose, and the settings fastrsa
cannot reweight are refused (as for `fastrsa generate --cmnd`). Pythia's in-situ self-check (the
sentinel) is not run: it needs a second Pythia with the same configuration, which only
`fastrsa generate` controls.

What is recorded: the base point as this Pythia has it; `pythia_settings` = every string the Pythia
read (Settings and ParticleData read histories, Pythia's own start-up tune strings left out), which
includes Random:seed when the user set it; events are stored as they come, so replaying the settings
reproduces the events of the first shard (the later shards continue the same random stream).

Shards are written atomically when full; an exception or a kill inside the loop leaves only complete
shards (the buffered events of the unfinished shard are dropped, and the manifest says the run did not
finish: `Dataset.complete` is False). `close()` writes the last, partial shard and marks the run done.
"""
from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..errors import DatasetError, ParameterError
from ..pythia.cmnd import check_lines_reweightable, check_reweightable
from ..pythia.records import import_pythia, make_reader
from ..pythia.run import actual_base, check_record_switches, final_state
from ..pythia.setups import cmnd_setup
from ..store.integrity import record
from ..store.layout import manifest_path, read_manifest
from ..store.schema import FORMAT_NAME, FORMAT_VERSION
from ..store.writer import write_manifest, write_shard
from .shard import build_table, make_meta


def read_history(pythia, pythia8mc) -> list[str]:
    """The strings `pythia` read, in order (ParticleData's after the Settings'), without the tune
    strings every fresh Pythia reads at construction."""
    hist = list(pythia.settings.getReadHistory())
    fresh = list(pythia8mc.Pythia("", False).settings.getReadHistory())
    if hist[:len(fresh)] == fresh:
        hist = hist[len(fresh):]
    return [" ".join(s.split()) for s in hist + list(pythia.particleData.getReadHistory())]


class Recorder:
    """Writes the events of a user's loop as a fastrsa dataset (see the module docstring)."""

    def __init__(self, pythia, out, shard_events: int = 10000, description: str | None = None):
        if isinstance(shard_events, bool) or not isinstance(shard_events, int) or shard_events < 1:
            raise ParameterError(f"shard_events = {shard_events!r} must be an integer >= 1")
        p8 = import_pythia()
        check_record_switches(pythia)
        check_reweightable(pythia)
        self._reader = make_reader(pythia, p8)       # proves the WeightContainer layout
        self.pythia = pythia
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise DatasetError(f"{self.out}: exists and is not an empty directory; the Recorder writes a new "
                               "dataset, choose a new directory")
        self.shard_events = shard_events
        self.base = actual_base(pythia)
        s = pythia.settings
        self.settings = read_history(pythia, p8)
        check_lines_reweightable([(line, "pythia") for line in self.settings])
        self.seed = s.mode("Random:seed") if s.flag("Random:setSeed") else None
        info = pythia.infoPython()
        process = {"source": "fastrsa.Recorder", "beams": [s.mode("Beams:idA"), s.mode("Beams:idB")],
                   "eCM": info.eCM(), "frame_type": s.mode("Beams:frameType"),
                   "process_level": bool(s.flag("ProcessLevel:all")), "switches": []}
        setup = cmnd_setup(self.settings, info.eCM(), process)
        self.setup = setup.to_dict()
        if description:
            self.setup["description"] = description
        self._rows, self.n_shards, self.events, self.closed = [], 0, 0, False
        self._identity = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "recorder": True,
                          "shard_events": shard_events, "setup": {"name": "cmnd", "energy": setup.energy}}
        self.out.mkdir(parents=True, exist_ok=True)
        self._manifest(None)

    def _manifest(self, n_shards) -> None:
        have = read_manifest(manifest_path(self.out)).get("shards") if manifest_path(self.out).exists() else None
        write_manifest(self.out, {"identity": self._identity, "n_shards": n_shards, "events": self.events,
                                  "created_by": f"fastrsa {__version__} (Recorder)", "shards": have or {}})

    def append(self) -> None:
        """Store the event Pythia generated last (call after each successful `pythia.next()`)."""
        if self.closed:
            raise DatasetError(f"{self.out}: the Recorder is closed")
        self._rows.append((self._reader.read(), final_state(self.pythia.event)))
        if len(self._rows) == self.shard_events:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        i = self.n_shards
        meta = make_meta(self.base, self.setup, self.seed, i, self.seed if i == 0 else None, len(self._rows),
                         None, self.settings, None, generator=f"fastrsa {__version__} (Recorder)")
        record(self.out, {i: write_shard(self.out, i, build_table(self._rows, meta))})
        self.n_shards, self.events, self._rows = i + 1, self.events + len(self._rows), []

    def close(self) -> None:
        """Write the last (partial) shard and mark the dataset complete."""
        if self.closed:
            return
        self._flush()
        self._manifest(self.n_shards)
        self.closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:                   # keep the complete shards; the unfinished one is dropped
            self._rows, self.closed = [], True

    def __len__(self) -> int:
        return self.events + len(self._rows)

    def __repr__(self) -> str:
        return f"Recorder({str(self.out)!r}, events={len(self)}, shards={self.n_shards})"


__all__ = ["Recorder", "read_history"]
