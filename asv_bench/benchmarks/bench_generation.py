"""Generation throughput with and without reading the rejection records (same Pythia, same events)."""
from fastrsa.generation.plan import RunConfig
from fastrsa.generation.shard import build_table
from fastrsa.params import BaseParams
from fastrsa.pythia.records import import_pythia, make_reader
from fastrsa.pythia.run import final_hadrons, new_pythia
from fastrsa.pythia.setups import fill_event, make_setup

N_EVENTS = 2000


class Generation:
    params = ["pythia_only", "pythia+hadrons", "pythia+hadrons+records"]
    param_names = ["what"]
    timeout = 300

    def setup(self, what):
        p8 = import_pythia()
        self.cfg = RunConfig(N_EVENTS, BaseParams(), make_setup("string"), 1, N_EVENTS)
        self.py = new_pythia(p8, self.cfg.base, self.cfg.setup, 12345)
        self.reader = make_reader(self.py, p8)
        self.cache = {}

    def time_events(self, what):
        py, setup, cache = self.py, self.cfg.setup, self.cache
        rows = []
        for _ in range(N_EVENTS):
            fill_event(py, setup, cache)
            py.next()
            if what == "pythia_only":
                continue
            had = final_hadrons(py.event)
            if what == "pythia+hadrons+records":
                rows.append((self.reader.read(), had))
        if rows:
            build_table(rows, {"format": "bench"})
