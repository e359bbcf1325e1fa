"""Thrust, exactly, for any list of momenta: the one numba kernel used for hadrons (observables) and for
partons (the shower, which differentiates thrust at the partition this kernel finds).

    T = max over unit n of sum_i |p_i . n| / sum_i |p_i| = max over partitions s of |sum_i s_i p_i| / sum_i |p_i|.

The optimal partition is cut by a plane through the origin; turning that plane until it touches two momenta
changes no sign, so trying every pair's plane (with both signs for the two momenta on it), plus the axes
along each momentum (few or collinear momenta), finds the maximum (Brandt et al. 1964; Farhi 1977). In an
exactly planar event every pair's plane is the event's own, so there the lines within it through each
momentum are tried instead.
"""
import math

import numba


@numba.njit(inline="always")
def _side_sums(px, py, pz, lo, hi, nx, ny, nz):
    """sum over lo <= k < hi of s_k p_k, s_k = +1 where p_k . n >= 0, else -1: the pair loop's inner sum
    without a branch (a select and a multiply-add per momentum; 2.5x faster than the branching loop it
    replaced on 2e5 pion-string events, the same to rounding: the sums run in three pieces)."""
    sx = sy = sz = 0.0
    for k in range(lo, hi):
        s = 1.0 if px[k] * nx + py[k] * ny + pz[k] * nz >= 0.0 else -1.0
        sx += s * px[k]
        sy += s * py[k]
        sz += s * pz[k]
    return sx, sy, sz


@numba.njit(inline="always")
def _cross(ax, ay, az, bx, by, bz):
    """a x b: the normal of the plane through a and b (for a plane's normal a, a line within it along b)."""
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


@numba.njit(inline="always")
def _line_side(px, py, pz, k, j, mx, my, mz):
    """(s, on): the side s = +-1 of momentum k for the line along momentum j in a planar event's plane (m:
    the line's normal within the plane), and whether k lies on that line. A momentum on the line goes with
    j's side: s is then its side along j (+1 where it points with j), to be multiplied by j's sign."""
    d = px[k] * mx + py[k] * my + pz[k] * mz
    if d != 0.0:
        return (1.0 if d > 0.0 else -1.0), False
    return (1.0 if px[k] * px[j] + py[k] * py[j] + pz[k] * pz[j] >= 0.0 else -1.0), True


@numba.njit(cache=True)
def _plane_normal(px, py, pz, lo, hi):
    """The normal of the one plane through the origin that holds every momentum lo <= k < hi exactly (the
    first nonzero cross product of two of them, when every momentum's dot product with it is exactly 0),
    else (0, 0, 0): the event is not planar, or all its momenta are collinear."""
    for j in range(lo, hi):
        for l in range(j + 1, hi):
            nx, ny, nz = _cross(px[j], py[j], pz[j], px[l], py[l], pz[l])
            if nx == 0.0 and ny == 0.0 and nz == 0.0:
                continue
            for k in range(lo, hi):
                if px[k] * nx + py[k] * ny + pz[k] * nz != 0.0:
                    return 0.0, 0.0, 0.0
            return nx, ny, nz
    return 0.0, 0.0, 0.0


@numba.njit(cache=True)
def _fill_signs(px, py, pz, lo, hi, bj, bl, bsj, bsl, signs):
    """Write the best partition's signs (+-1 per momentum) found by thrust_kernel: an axis along bj (bl =
    -1), the plane through bj and bl, or (bl = -2) the line along bj in a planar event's plane."""
    if bl == -2:
        ux, uy, uz = _plane_normal(px, py, pz, lo, hi)
        mx, my, mz = _cross(ux, uy, uz, px[bj], py[bj], pz[bj])
        for k in range(lo, hi):
            sk, on = _line_side(px, py, pz, k, bj, mx, my, mz)
            signs[k] = sk * bsj if on else sk
        return
    if bl < 0:
        for k in range(lo, hi):
            signs[k] = 1.0 if px[k] * px[bj] + py[k] * py[bj] + pz[k] * pz[bj] >= 0.0 else -1.0
        return
    nx, ny, nz = _cross(px[bj], py[bj], pz[bj], px[bl], py[bl], pz[bl])
    for k in range(lo, hi):
        signs[k] = 1.0 if px[k] * nx + py[k] * ny + pz[k] * nz >= 0.0 else -1.0
    signs[bj] = bsj
    signs[bl] = bsl


@numba.njit(cache=True, parallel=True)
def thrust_kernel(offsets, px, py, pz, out, signs, want_signs):
    """Per event of the flat momenta (int64 offsets): out[i] = thrust; with want_signs, signs[k] = +-1,
    the hemisphere of momentum k in the optimal partition."""
    n_ev = len(offsets) - 1
    for i in numba.prange(n_ev):
        lo, hi = offsets[i], offsets[i + 1]
        n = hi - lo
        norm = 0.0
        for k in range(lo, hi):
            norm += math.sqrt(px[k] ** 2 + py[k] ** 2 + pz[k] ** 2)
        if n == 0 or norm == 0.0:
            out[i] = 1.0
            if want_signs:
                for k in range(lo, hi):
                    signs[k] = 1.0
            continue
        best = 0.0
        bj, bl, bsj, bsl = -1, -1, 0.0, 0.0      # the best partition: axis along j (bl < 0) or plane (j, l)
        # Candidate axes along each hadron (covers n < 3 and collinear events).
        for j in range(lo, hi):
            sx = sy = sz = 0.0
            for k in range(lo, hi):
                if px[k] * px[j] + py[k] * py[j] + pz[k] * pz[j] >= 0.0:
                    sx += px[k]; sy += py[k]; sz += pz[k]
                else:
                    sx -= px[k]; sy -= py[k]; sz -= pz[k]
            v = sx * sx + sy * sy + sz * sz
            if v > best:
                bj, bl = j, -1
            best = max(best, v)
        # The thrust axis splits the event by a plane; that plane can be turned until it touches two
        # hadrons, so trying every pair's plane (with both signs for the two on it) finds the maximum.
        for j in range(lo, hi):
            for l in range(j + 1, hi):
                nx, ny, nz = _cross(px[j], py[j], pz[j], px[l], py[l], pz[l])
                if nx == 0.0 and ny == 0.0 and nz == 0.0:
                    continue
                # every momentum but j and l, by the side of the plane it lies on: three branch-free runs
                sx, sy, sz = _side_sums(px, py, pz, lo, j, nx, ny, nz)
                ax, ay, az = _side_sums(px, py, pz, j + 1, l, nx, ny, nz)
                bx, by, bz = _side_sums(px, py, pz, l + 1, hi, nx, ny, nz)
                sx += ax + bx
                sy += ay + by
                sz += az + bz
                for sj in (-1.0, 1.0):
                    for sl in (-1.0, 1.0):
                        tx = sx + sj * px[j] + sl * px[l]
                        ty = sy + sj * py[j] + sl * py[l]
                        tz = sz + sj * pz[j] + sl * pz[l]
                        v = tx * tx + ty * ty + tz * tz
                        if v > best:
                            bj, bl, bsj, bsl = j, l, sj, sl
                        best = max(best, v)
        # An exactly planar event (every momentum on one plane through the origin, e.g. all pz = 0): every
        # pair's plane above is that plane, which splits nothing. Its optimal split is by a line in the
        # plane, which can be turned until it lies along a momentum j: the momenta along that line go with
        # j's side, the others by their side of the line.
        ux, uy, uz = _plane_normal(px, py, pz, lo, hi)
        if ux != 0.0 or uy != 0.0 or uz != 0.0:
            for j in range(lo, hi):
                mx, my, mz = _cross(ux, uy, uz, px[j], py[j], pz[j])
                if mx == 0.0 and my == 0.0 and mz == 0.0:
                    continue
                sx = sy = sz = 0.0
                ax = ay = az = 0.0
                for k in range(lo, hi):
                    s, on = _line_side(px, py, pz, k, j, mx, my, mz)
                    if on:
                        ax += s * px[k]; ay += s * py[k]; az += s * pz[k]
                    else:
                        sx += s * px[k]; sy += s * py[k]; sz += s * pz[k]
                for sj in (-1.0, 1.0):
                    tx, ty, tz = sx + sj * ax, sy + sj * ay, sz + sj * az
                    v = tx * tx + ty * ty + tz * tz
                    if v > best:
                        bj, bl, bsj = j, -2, sj
                    best = max(best, v)
        out[i] = math.sqrt(best) / norm
        if want_signs:
            _fill_signs(px, py, pz, lo, hi, bj, bl, bsj, bsl, signs)
