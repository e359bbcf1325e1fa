"""A learned observable: a DeepSets classifier score that separates a base sample from a target.

    score(event) = rho( sum over hadrons h of phi(pT_h, eta_h, phi_h) )

with phi and rho small MLPs (as in the RSA paper). The sum runs over the flat hadron list with
index_add (no padding), so events of any multiplicity go in as they are. Trained once with
`fastrsa classifier`, saved, and then used like any other event-level observable
('classifier:PATH'); its score (the logit) depends on the hadrons only, not on the Lund parameters.
"""
from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, ParameterError
from ..store.hadrons import HadronSample, check_same_setup, load_hadrons
from ..store.writer import atomic_write_bytes
from .registry import register_prefix

FEATURES = ("pT", "eta", "phi")


def hadron_features(h: HadronSample) -> np.ndarray:
    """[n_hadrons, 3]: pT, pseudorapidity eta, azimuth phi (eta of a hadron along the axis is capped
    at +-20 rather than infinite)."""
    pt = np.hypot(h.px, h.py)
    eta = np.arcsinh(np.divide(h.pz, pt, out=np.sign(h.pz) * 4.85e8, where=pt > 0))
    return np.stack([pt, np.clip(eta, -20, 20), np.arctan2(h.py, h.px)], 1)


class DeepSets(torch.nn.Module):
    """Per-hadron MLP phi, sum over each event's hadrons, MLP rho -> one logit per event."""

    def __init__(self, hidden: int = 64, mean=None, std=None):
        super().__init__()
        self.phi = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.ReLU())
        self.rho = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))
        self.register_buffer("mean", torch.zeros(3) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(3) if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.hidden = hidden

    def forward(self, feats: torch.Tensor, event_index: torch.Tensor, n_events: int) -> torch.Tensor:
        h = self.phi((feats - self.mean) / self.std)
        pooled = h.new_zeros(n_events, h.shape[1]).index_add(0, event_index, h)
        return self.rho(pooled)[:, 0]


class Classifier:
    """A trained DeepSets model; `score(sample)` gives each event's logit (the observable)."""

    def __init__(self, model: DeepSets, info: dict):
        self.model = model.eval()
        self.info = info

    def score(self, h: HadronSample, batch_events: int = 8192) -> np.ndarray:
        if h.setup != self.info["setup"]:
            raise DatasetError(f"{h.path}: setup {h.setup} but the classifier was trained on {self.info['setup']}")
        h = h.hadrons()
        feats = torch.from_numpy(hadron_features(h).astype(np.float32))
        out = np.empty(len(h))
        with torch.no_grad():
            for s in range(0, len(h), batch_events):
                e = min(s + batch_events, len(h))
                lo, hi = int(h.offsets[s]), int(h.offsets[e])
                idx = torch.from_numpy(np.repeat(np.arange(e - s), np.diff(h.offsets[s:e + 1])))
                out[s:e] = self.model(feats[lo:hi], idx, e - s).numpy()
        return out

    def save(self, path) -> None:
        buf = io.BytesIO()
        torch.save({"state": self.model.state_dict(), "hidden": self.model.hidden, "info": self.info}, buf)
        atomic_write_bytes(Path(path), buf.getvalue())


MAX_HIDDEN = 4096     # wider than any classifier fastrsa trains; checked before anything is allocated


def load_classifier(path) -> Classifier:
    """A classifier saved by `fastrsa classifier`. Everything in the file is checked (keys, width, tensor
    shapes against that width, the setup it was trained on) before the model is built."""
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"classifier: {p} does not exist; train one with "
                             f"'fastrsa classifier --base BASE --target TARGET --out {p}'")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not our file
        raise ParameterError(f"classifier: {p} is not a fastrsa classifier ({type(exc).__name__})") from None
    fix = "retrain it with 'fastrsa classifier'"
    if not isinstance(d, dict) or not {"state", "hidden", "info"} <= set(d):
        raise ParameterError(f"classifier: {p} lacks {sorted({'state', 'hidden', 'info'} - set(d or {}))}; {fix}")
    hidden, info, state = d["hidden"], d["info"], d["state"]
    if not isinstance(hidden, int) or not 1 <= hidden <= MAX_HIDDEN:
        raise ParameterError(f"classifier: {p} has hidden = {hidden!r}; must be an integer in [1, {MAX_HIDDEN}]; {fix}")
    setup = info.get("setup") if isinstance(info, dict) else None
    if not isinstance(setup, dict) or not {"name", "energy"} <= set(setup):
        raise ParameterError(f"classifier: {p} has no 'setup' (name, energy) in its info; {fix}")
    with torch.device("meta"):          # shapes only: nothing is allocated
        expected = {k: tuple(v.shape) for k, v in DeepSets(hidden).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if got != expected:
        raise ParameterError(f"classifier: {p} holds tensors that do not fit a DeepSets of width {hidden}; {fix}")
    model = DeepSets(hidden)
    model.load_state_dict(state)
    return Classifier(model, info)


def _gather(offsets: np.ndarray, events: np.ndarray):
    """Hadron indices of `events` (in that order) and each hadron's position among them."""
    lengths = offsets[events + 1] - offsets[events]
    starts = np.repeat(offsets[events] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return starts + np.arange(lengths.sum()), np.repeat(np.arange(len(events)), lengths)


def train_classifier(base, target, hidden: int = 64, epochs: int = 10, batch_events: int = 512,
                     lr: float = 2e-3, seed: int = 0, valid_frac: float = 0.2, progress: bool = True,
                     stream=None) -> Classifier:
    """Train DeepSets to tell `base` events (label 0) from `target` events (label 1) with binary
    cross-entropy; reports the held-out accuracy and loss. base/target: dataset paths or HadronSamples."""
    stream = stream or sys.stderr
    hb = (base if isinstance(base, HadronSample) else load_hadrons(base)).hadrons()
    ht = (target if isinstance(target, HadronSample) else load_hadrons(target)).hadrons()
    check_same_setup({"target": ht, "base": hb})
    if epochs < 1 or hidden < 1 or batch_events < 1:
        raise ParameterError("classifier: epochs, hidden and batch_events must be >= 1")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fb, ft = hadron_features(hb), hadron_features(ht)
    feats = torch.from_numpy(np.concatenate([fb, ft]).astype(np.float32))
    offsets = np.concatenate([hb.offsets, ht.offsets[1:] + hb.offsets[-1]])
    labels = np.concatenate([np.zeros(len(hb)), np.ones(len(ht))]).astype(np.float32)
    # Balance the classes so the score does not just learn the sample sizes.
    ev_w = np.where(labels == 0, len(ht) / len(hb), 1.0).astype(np.float32)
    order = rng.permutation(len(labels))
    n_valid = max(1, int(valid_frac * len(order)))
    valid, train = order[:n_valid], order[n_valid:]
    allf = feats.numpy()
    model = DeepSets(hidden, allf.mean(0), allf.std(0) + 1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lossf = torch.nn.BCEWithLogitsLoss(reduction="none")

    def run(events, learn):
        hid, pos = _gather(offsets, events)
        logit = model(feats[torch.from_numpy(hid)], torch.from_numpy(pos), len(events))
        y, w = torch.from_numpy(labels[events]), torch.from_numpy(ev_w[events])
        loss = (lossf(logit, y) * w).sum() / w.sum()
        if learn:
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.detach(), logit.detach(), y

    for epoch in range(epochs):
        rng.shuffle(train)
        model.train()
        for s in range(0, len(train), batch_events):
            run(train[s:s + batch_events], True)
        model.eval()
        with torch.no_grad():
            vl, logit, y = run(valid, False)
        acc = float(((logit > 0).float() == y).float().mean())
        if progress:
            print(f"  epoch {epoch + 1:3d}  held-out loss {float(vl):.4f} (ln 2 = {math.log(2):.4f} means no "
                  f"separation)  accuracy {acc:.3f}", file=stream, flush=True)
    info = {"setup": hb.setup, "base": hb.path, "target": ht.path, "features": list(FEATURES),
            "epochs": epochs, "seed": seed, "valid_loss": float(vl), "valid_accuracy": acc}
    return Classifier(model, info)


def _classifier_observable(path: str, context: dict):
    model = context["classifiers"].get(path) or load_classifier(path)
    return model.score


register_prefix("classifier:", "event", "logit of a DeepSets classifier trained with 'fastrsa classifier'",
                _classifier_observable, "classifier:PATH",
                "a model path, e.g. classifier:model.pt (train one with 'fastrsa classifier')")
