"""Record your own Pythia event loop as a fastrsa dataset, then reweight it.

    python examples/record_your_own_loop.py [OUT]          (about 10 s on one core)

Any configuration works (here e+e- -> Z -> hadrons at 91.2 GeV with Pythia's defaults); fastrsa needs
only the two record switches. The Recorder checks them and the record layout, refuses settings it cannot
reweight, and writes shards atomically: an exception or a kill inside the loop leaves complete shards.
"""
import sys

import fastrsa
from fastrsa.pythia.records import import_pythia


def main(out="my-loop", events=400):
    pythia8mc = import_pythia()
    pythia = pythia8mc.Pythia("", False)
    for setting in ["Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 91.2", "PDF:lepton = off",
                    "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
                    "Print:quiet = on", "Random:setSeed = on", "Random:seed = 12345",
                    # what fastrsa needs: Pythia keeps every accept/reject trial of its z sampling
                    "VariationFrag:z = on", "VariationFrag:pT = on", "VariationFrag:zHead = 10"]:
        pythia.readString(setting)
    pythia.init()

    with fastrsa.Recorder(pythia, out, shard_events=100) as rec:
        while len(rec) < events:
            if not pythia.next():
                continue
            # ... your own analysis of pythia.event here ...
            rec.append()

    ds = fastrsa.open_dataset(out)
    print(ds, "base point as Pythia had it:", ds.base.a, ds.base.b, ds.base.sigma)
    print("settings recorded:", ds.meta["pythia_settings"][:3], "...")
    # Reweight to another (a, b, sigma): exact per-event weights.
    import torch
    w = torch.exp(fastrsa.lund_log_weights(ds.to_torch("cpu"), torch.tensor([0.6, 0.9, 0.335], dtype=torch.float64)))
    print(f"mean weight at (a, b) = (0.6, 0.9): {w.mean().item():.3f} over {len(w)} events")


if __name__ == "__main__":
    main(*sys.argv[1:2])
