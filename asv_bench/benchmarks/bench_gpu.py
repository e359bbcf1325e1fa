"""The weight kernel on a GPU against the GPU's memory-bandwidth floor (issue 13: within 2x), in one run.

Forward + backward of `lund_log_weights` at one point on 1e6 events: the 20k-event pion string tiled 50
times (benchmarks.common.tile_batch: the sample's own trials, so the same work per trial as a fresh 1e6),
in the compact layout and with precomputed features. The floor is the time to read the batch's bytes once
(`TrialBatch.nbytes`: what the kernel reads per point) at the bandwidth of a device-to-device copy measured
in the same run; a copy reads and writes its bytes, so the floor is half the time of copying batch.nbytes.
`track_*` report kernel / floor. Skipped (NotImplementedError, asv's skip) where torch sees no CUDA device.

Also runs as a script, printing every number with the GPU's name (for a session with a GPU but no asv):
    cd asv_bench && python -m benchmarks.bench_gpu
"""
import torch

import fastrsa

from .common import string_dataset, tile_batch

N_EVENTS = 1_000_000
SAMPLE = 20000
THETA = [0.68, 0.98, 0.30]


def _cuda_time(f, repeat: int = 7) -> float:
    """Best of `repeat` runs of f, in seconds, timed by CUDA events on torch's current stream."""
    best = float("inf")
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        f()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


class GpuKernelAndFloor:
    timeout = 1800
    number = 1
    repeat = 7

    def setup(self):
        if not torch.cuda.is_available():
            raise NotImplementedError("no CUDA device: the GPU benchmark needs one")
        sample = string_dataset(SAMPLE).to_torch("cpu")
        self.batch = tile_batch(sample, N_EVENTS // SAMPLE).to("cuda")
        self.features = tile_batch(sample.with_features(), N_EVENTS // SAMPLE).to("cuda")
        n = self.batch.nbytes // 8
        self.src = torch.ones(n, dtype=torch.float64, device="cuda")
        self.dst = torch.empty_like(self.src)
        self.theta = torch.tensor(THETA, dtype=torch.float64, device="cuda", requires_grad=True)
        for f in (self.time_kernel_compact, self.time_kernel_features, self.time_copy_batch_bytes):
            f()                                                      # compile and warm up outside timing
        torch.cuda.synchronize()

    def _fwd_bwd(self, batch):
        self.theta.grad = None
        fastrsa.lund_log_weights(batch, self.theta).sum().backward()

    def time_kernel_compact(self):
        self._fwd_bwd(self.batch)
        torch.cuda.synchronize()

    def time_kernel_features(self):
        self._fwd_bwd(self.features)
        torch.cuda.synchronize()

    def time_copy_batch_bytes(self):
        self.dst.copy_(self.src)
        torch.cuda.synchronize()

    def _floor(self) -> float:
        return _cuda_time(lambda: self.dst.copy_(self.src)) / 2

    def track_compact_over_floor(self):
        return _cuda_time(lambda: self._fwd_bwd(self.batch)) / self._floor()
    track_compact_over_floor.unit = "ratio"

    def track_features_over_floor(self):
        # the feature mode reads more bytes (36 per trial instead of 23): its own floor is longer
        floor = self._floor() * self.features.nbytes / self.batch.nbytes
        return _cuda_time(lambda: self._fwd_bwd(self.features)) / floor
    track_features_over_floor.unit = "ratio"


def main() -> None:
    b = GpuKernelAndFloor()
    b.setup()
    t_copy = _cuda_time(lambda: b.dst.copy_(b.src))
    t_c = _cuda_time(lambda: b._fwd_bwd(b.batch))
    t_f = _cuda_time(lambda: b._fwd_bwd(b.features))
    T = b.batch.n_trials
    print(f"GPU: {torch.cuda.get_device_name()}; {len(b.batch)} events, {T} trials, "
          f"{b.batch.nbytes / T:.1f} B/trial compact, {b.features.nbytes / T:.1f} with features")
    gbs = 2 * b.batch.nbytes / t_copy / 1e9
    print(f"copy of {b.batch.nbytes / 1e9:.2f} GB: {t_copy * 1e3:.2f} ms = {gbs:.0f} GB/s (read + write); "
          f"floor (read once) {t_copy / 2 * 1e3:.2f} ms")
    print(f"forward + backward, compact:  {t_c * 1e3:.2f} ms = {t_c / (t_copy / 2):.2f}x the floor, "
          f"{len(b.batch) / t_c / 1e6:.1f} M events/s")
    floor_f = t_copy / 2 * b.features.nbytes / b.batch.nbytes
    print(f"forward + backward, features: {t_f * 1e3:.2f} ms = {t_f / floor_f:.2f}x its floor")


if __name__ == "__main__":
    main()
