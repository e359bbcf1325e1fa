"""`fastrsa generate`: stock Pythia 8 -> a dataset of rejection-sampling histories (plan, then make
the missing shards with the local pool)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ParameterError
from ..params import PAPER_BASE, BaseParams
from ..pythia.cmnd import check_settings, read_cmnd
from ..pythia.records import import_pythia
from ..pythia.run import probe_cmnd
from ..pythia.setups import make_setup
from ..store.dataset import Dataset, open_dataset
from ..store.layout import TEMP_GLOB, manifest_path
from ..store.layout import shards as list_shards
from .plan import RunConfig, default_shard_events, prepare_output, validate_request
from .pool import run_jobs

# With a configuration of their own, these come from it (read back from Pythia after init).
CMND_CONFLICTS = {"a": "StringZ:aLund", "b": "StringZ:bLund", "sigma": "StringPT:sigma", "energy": "Beams:eCM"}


def cmnd_settings(cmnd=None, settings=()) -> list[tuple[str, str]]:
    """(line, origin) pairs of a configuration: the file's lines in order, then `settings` in order."""
    out = read_cmnd(cmnd) if cmnd is not None else []
    for k, s in enumerate(settings or (), 1):
        if not isinstance(s, str) or not s.strip():
            raise ParameterError(f"set #{k} = {s!r}: give a Pythia setting 'Key = value'")
        out.append((s.strip(), f"--set #{k}"))
    return out


def generate(out, events: int = 10000, a: float | None = None, b: float | None = None,
             sigma: float | None = None, z_head: float = 10.0, energy: float | None = None, seed: int = 1,
             jobs: int = 1, setup: str | None = None, shard_events: int | None = None, progress: bool = True,
             cmnd=None, settings=(), dask=None, lam: float | None = None,
             orders: int | None = None) -> Dataset | None:
    """Generate (or resume) a dataset in directory `out`; returns the opened Dataset (None for a URL).

    Built-in setups (`setup` "string", the default, or "ee") take the base point from a, b, sigma (the
    RSA paper's point when left out). Your own configuration (`cmnd` a .cmnd file and/or `settings`, a
    list of 'Key = value' strings applied after it; `setup` None or "cmnd") takes everything from
    Pythia: a, b, sigma and energy cannot be given with it (set StringZ:aLund etc. in the configuration).

    `dask`: make the shards as tasks of a Dask cluster instead of `jobs` local processes: "local",
    "local:N", a scheduler address "tcp://host:port", or a `distributed.Client` (see fastrsa.cluster).
    `out` must then be a path every worker reaches (a shared filesystem; file:// URLs are paths), or an
    fsspec URL (s3://..., configured on every worker; then nothing is returned: open the dataset where
    it is mounted). The shards are byte-identical to a local run's.

    The "dqcd" setup showers with `fastrsa.shower` at Lambda = `lam` (default 0.4 GeV; Taylor `orders`,
    default 3) and hadronizes the partons with Pythia (generation/dqcd.py, docs/shower.md).
    """
    if setup != "dqcd" and (lam is not None or orders is not None):
        raise ParameterError(f"lambda = {lam!r} / orders = {orders!r} belong to the dqcd setup (the parton shower); "
                             "add --setup dqcd or leave them out")
    from .url_store import UrlDir, is_url
    remote = UrlDir(str(out)) if is_url(out) else None
    if remote is not None and dask is None:
        raise ParameterError(f"out = {str(out)!r}: a URL is written by the workers of a Dask cluster; add dask "
                             "(--dask local or a scheduler address), or write to a path")
    out = out if remote is not None else _local_path(out)
    if dask is not None:
        _check_dask(dask, jobs)
    own = cmnd is not None or bool(settings) or setup == "cmnd"
    if own:
        if setup not in (None, "cmnd"):
            raise ParameterError(f"setup = {setup!r} cannot be combined with a configuration of your own "
                                 "(cmnd / set): the configuration is the setup")
        given = {k: v for k, v in (("a", a), ("b", b), ("sigma", sigma), ("energy", energy)) if v is not None}
        if given:
            k, v = next(iter(given.items()))
            raise ParameterError(f"{k} = {v!r} cannot be combined with cmnd: with your own configuration "
                                 f"fastrsa reads it back from Pythia; set it there (--set "
                                 f"'{CMND_CONFLICTS[k]} = {v}')")
        lines = cmnd_settings(cmnd, settings)
        if not lines:
            raise ParameterError("cmnd: the configuration holds no settings; Pythia needs at least beams "
                                 "and a process")
        validate_request(events, None, None, None, z_head, seed, jobs, shard_events)
        check_settings(lines)
    else:
        a, b, sigma = (PAPER_BASE[k] if v is None else v for k, v in (("a", a), ("b", b), ("sigma", sigma)))
        validate_request(events, a, b, sigma, z_head, seed, jobs, shard_events)
        shower = None
        if setup == "dqcd":
            from .dqcd import DEFAULT_LAMBDA, DEFAULT_ORDERS, shower_params
            shower = shower_params(DEFAULT_LAMBDA if lam is None else lam, DEFAULT_ORDERS if orders is None else orders)
        st = make_setup(setup or "string", energy, shower=shower)
    p8 = import_pythia()        # fail here, before anything is written, when Pythia is unusable
    if shard_events is None:
        shard_events = default_shard_events(events)
    if own:
        probe = RunConfig(int(events), BaseParams(z_head=z_head), make_setup("ee"), int(seed), int(shard_events))
        st, base = probe_cmnd(p8, lines, z_head, probe.shard_seed(0), "" if cmnd is None else str(cmnd))
    else:
        base = BaseParams(a=a, b=b, sigma=sigma, z_head=z_head)
    config = RunConfig(int(events), base, st, int(seed), int(shard_events))
    if remote is not None:
        return _generate_url(remote, config, dask, progress)
    out = Path(out)
    fresh = not out.exists()
    todo = prepare_output(out, config)
    done_events = sum(config.shard_size(i) for i in range(config.n_shards)) - \
        sum(config.shard_size(i) for i in todo)
    if todo:
        try:
            if dask is None:
                run_jobs(out, config, todo, jobs, progress, done_events)
            else:
                from ..cluster import dask_client
                from .dask_run import run_dask
                with dask_client(dask) as client:
                    run_dask(out, config, todo, client, progress, done_events)
        except BaseException:
            _forget_if_empty(out, fresh)
            raise
    return open_dataset(out)


def _generate_url(remote, config: RunConfig, dask, progress: bool) -> None:
    """The run at an fsspec URL: manifest and resume through fsspec, shards written by the workers."""
    from .. import __version__
    from ..cluster import dask_client
    from .dask_run import run_dask
    todo = remote.prepare(config.identity(), config.n_shards, f"fastrsa {__version__}")
    done_events = config.events - sum(config.shard_size(i) for i in todo)
    if todo:
        with dask_client(dask) as client:
            run_dask(remote.url, config, todo, client, progress, done_events)
    return None


def _local_path(out):
    """`out` as a path: a plain path, or a file:// URL (a directory every Dask worker reaches when it lies
    on a shared filesystem). Other URL schemes are refused with the way round them."""
    text = str(out)
    if text.startswith("file://"):
        from urllib.parse import unquote, urlparse
        u = urlparse(text)
        if u.netloc not in ("", "localhost"):
            raise ParameterError(f"out = {text!r}: a file:// URL names a path on this machine (file:///path)")
        return Path(unquote(u.path))
    return Path(out)


def _check_dask(dask, jobs) -> None:
    """--dask is checked (value, installation) before Pythia or the output directory are touched."""
    from ..cluster import parse_spec, require_dask
    distributed = require_dask()
    if not isinstance(dask, distributed.Client):
        parse_spec(dask)
    if jobs != 1:
        raise ParameterError(f"jobs = {jobs}: the local pool's size; with dask the cluster's workers make the "
                             "shards: leave jobs at 1 (size the cluster instead, e.g. local:N)")


def _forget_if_empty(out: Path, fresh: bool) -> None:
    """A run that failed before any shard was complete leaves nothing behind (no manifest that would
    refuse a corrected rerun as 'a different dataset'); a run with complete shards stays resumable."""
    if list_shards(out):
        return
    for f in [manifest_path(out), *out.glob(TEMP_GLOB)]:
        f.unlink(missing_ok=True)
    if fresh and not any(out.iterdir()):
        out.rmdir()
