"""Weights + gradients at a 7-parameter point (a, b, sigma, rho, xi, x, y) on e+e- -> Z events, against the
same dataset at (a, b, sigma) only and a Python loop over pythia8mc's post-hoc tools (forward only)."""
import torch

import fastrsa

from .common import ee_dataset

N_EVENTS = 5000
N_LOOP = 200
NAMES = ("a", "b", "sigma", "rho", "xi", "x", "y")
THETA7 = [0.70, 0.90, 0.32, 0.26, 0.097, 0.85, 0.035]


class FlavourWeights:
    timeout = 1200
    number = 1
    repeat = 5

    def setup(self):
        torch.set_num_threads(2)
        self.batch = ee_dataset(N_EVENTS).to_torch("cpu")
        self.theta7 = torch.tensor(THETA7, dtype=torch.float64, requires_grad=True)
        self.theta3 = torch.tensor(THETA7[:3], dtype=torch.float64, requires_grad=True)
        self.flav4 = torch.tensor(THETA7[3:], dtype=torch.float64, requires_grad=True)
        fastrsa.lund_log_weights(self.batch, self.theta7, names=NAMES).sum().backward()   # compile outside timing

    def time_seven_parameters_fwd_bwd_5000_ee_events(self):
        fastrsa.lund_log_weights(self.batch, self.theta7, names=NAMES).sum().backward()

    def time_three_parameters_fwd_bwd_5000_ee_events(self):
        fastrsa.lund_log_weights(self.batch, self.theta3).sum().backward()

    def time_flavour_only_fwd_bwd_5000_ee_events(self):
        fastrsa.lund_log_weights(self.batch, self.flav4, names=NAMES[3:]).sum().backward()

    def time_seven_parameters_K16_fwd_bwd_5000_ee_events(self):
        th = self.theta7.detach().repeat(16, 1).requires_grad_(True)
        fastrsa.lund_log_weights(self.batch, th, names=NAMES).sum().backward()


class PythiaPostHocLoop:
    """pythia8mc.KinematicVariations x FlavorVariations per event (forward only), 200 events."""
    timeout = 1200
    number = 1
    repeat = 3

    def setup(self):
        import pythia8mc as p8
        ds = ee_dataset(N_EVENTS)
        b, fb = ds.base, ds.to_torch().flavour
        self.kv = p8.KinematicVariations(b.a, b.b, b.r_fact_c, b.r_fact_b, b.sigma, b.z_head)
        self.fv = p8.FlavorVariations(fb.xi, fb.rho, fb.x, fb.y)
        fl = ds.flat(groups=("trials", "breaks", "flavour"))
        to, bo = fl.offsets["trials"], fl.offsets["breaks"]
        counts = fl["flav_breaks"].reshape(-1, 13)
        self.events = []
        for i in range(N_LOOP):
            s, e = to[i], to[i + 1]
            zi = [int(v) for pair in zip(fl["id_old"][s:e], fl["id_new"][s:e]) for v in pair]
            zd = [float(v) for t in zip(fl["mt2"][s:e], fl["z"][s:e], fl["fprel"][s:e]) for v in t]
            pt = [float(v) for t in zip(fl["pt2"][bo[i]:bo[i + 1]], fl["pt_mult"][bo[i]:bo[i + 1]]) for v in t]
            self.events.append((zi, zd, pt, counts[i].tolist() + [0]))
        self.rc, self.rb = b.r_fact_c, b.r_fact_b

    def time_pythia_posthoc_seven_parameters_fwd_200_events(self):
        a, b, s, rho, xi, x, y = THETA7
        parms = self.fv.parms(xi, rho, x, y)
        for zi, zd, pt, fl in self.events:
            self.kv.weight(a, b, self.rc, self.rb, s, zi, zd, pt) * self.fv.weight(parms, fl)
