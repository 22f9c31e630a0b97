# mypy: disable-error-code="no-untyped-def,misc,untyped-decorator,unused-ignore"
"""The Triton programs of :mod:`muscle_triton` (the algebra is explained there).

``_tiles`` forms Y (T, B), or the gradient sums from given dZ/dY (Y's products
recomputed), or both in one pass (``MODE``). Each program takes ``tails``
consecutive tails of one block of rows.
``triton`` is None where the package is missing (CPU installs, CI): then none of
the programs exists.
"""

from __future__ import annotations

try:  # optional dependency: CPU installs and CI have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

__all__ = ["triton"]

if triton is not None:  # pragma: no cover - compiled and tested on the GPU machine

    @triton.jit
    def _split(y, PREC: tl.constexpr):
        """Operand y (fp32) as the (hi, lo) pair the products of ``PREC`` take."""
        if PREC == "bf16x3":
            hi = y.to(tl.bfloat16)
            lo = (y - hi.to(tl.float32)).to(tl.bfloat16)
        else:  # tf32x3 / ieee: the dot splits (or not) by itself
            hi = y
            lo = y
        return hi, lo

    @triton.jit
    def _dot(x, yh, yl, BI: tl.constexpr, BJ: tl.constexpr, PREC: tl.constexpr):
        """The fp32 product x (I, K) @ y (K, J), y given as ``_split(y)``: (I, J)."""
        acc = tl.zeros((BI, BJ), dtype=tl.float32)
        if PREC == "bf16x3":  # smallest terms first
            xh = x.to(tl.bfloat16)
            xl = (x - xh.to(tl.float32)).to(tl.bfloat16)
            acc = tl.dot(xl, yh, acc)
            acc = tl.dot(xh, yl, acc)
            acc = tl.dot(xh, yh, acc)
        else:
            acc = tl.dot(x, yh, acc, input_precision=PREC)
        return acc

    @triton.jit
    def _power(n, k: tl.constexpr):
        """The place value n ** k of a tail digit, k a constant."""
        p = n * 0 + 1
        for _ in tl.static_range(k):
            p = p * n
        return p

    @triton.jit
    def _scales(gs_ptr, mx_ptr, t, rj, n, num_t, NUM_M: tl.constexpr,
                BJ: tl.constexpr):  # fmt: skip
        """U1[t], U2[t] (J,) and C_t of the tile of tail t, 0 outside the valid cells.

        Tail digit t_m (m >= 2) is (t // B^(M-1-m)) % B. Block rows are contiguous:
        gs[0, m, j, t_m] = gs[m, 0, t_m, j] (the Gram blocks are symmetric pairs).
        """
        valid = t < num_t
        mj = (rj < n) & valid
        nn = n * n
        s1 = tl.zeros([BJ], dtype=tl.float32)
        s2 = tl.zeros([BJ], dtype=tl.float32)
        sc = tl.sum(s1, axis=0)  # 0.0, a scalar tensor
        for m in tl.static_range(2, NUM_M):
            d = (t // _power(n, NUM_M - 1 - m)) % n
            row = gs_ptr + d * n + rj
            s1 += tl.load(row + m * NUM_M * nn, mask=mj, other=0.0)
            s1 -= tl.load(mx_ptr + m)  # mx[0, m]
            s2 += tl.load(row + (m * NUM_M + 1) * nn, mask=mj, other=0.0)
            s2 -= tl.load(mx_ptr + NUM_M + m)  # mx[1, m]
            for k in tl.static_range(m + 1, NUM_M):
                dk = (t // _power(n, NUM_M - 1 - k)) % n
                pair = (m * NUM_M + k) * nn + d * n + dk
                sc += tl.load(gs_ptr + pair, mask=valid, other=0.0)
                sc -= tl.load(mx_ptr + m * NUM_M + k)
        u1 = tl.where(mj, tl.exp(s1), 0.0)
        u2 = tl.where(mj, tl.exp(s2), 0.0)
        return u1, u2, tl.where(valid, tl.exp(sc), 0.0)

    @triton.jit
    def _setup(e1_ptr, e2_ptr, gs_ptr, mx_ptr, n, BI: tl.constexpr,
               BJ: tl.constexpr):  # fmt: skip
        """Rows, columns, E_1 and E_2 rows of this program (I, J), Q (J, J)."""
        ri = tl.program_id(1) * BI + tl.arange(0, BI)
        rj = tl.arange(0, BJ)
        m2 = (ri < n)[:, None] & (rj < n)[None, :]
        off = ri[:, None] * n + rj[None, :]
        e1 = tl.load(e1_ptr + off, mask=m2, other=0.0)
        e2 = tl.load(e2_ptr + off, mask=m2, other=0.0)
        mq = (rj < n)[:, None] & (rj < n)[None, :]
        q = tl.load(gs_ptr + n * n + rj[:, None] * n + rj[None, :], mask=mq)  # gs[0, 1]
        q = tl.where(mq, tl.exp(q - tl.load(mx_ptr + 1)), 0.0)  # Q, shifted by mx[0, 1]
        return ri, rj, m2, off, e1, e2, q

    @triton.jit
    def _tail_weights(e_ptr, t, ri, n, num_t, NUM_M: tl.constexpr, BI: tl.constexpr):
        """w[t, i] = prod_{m >= 2} E[m, i, t_m] (I,): what dZ_i/dY[t, i] is."""
        mi = (ri < n) & (t < num_t)
        w = tl.where(mi, 1.0, 0.0)
        for m in tl.static_range(2, NUM_M):
            d = (t // _power(n, NUM_M - 1 - m)) % n
            w *= tl.load(e_ptr + m * n * n + ri * n + d, mask=mi, other=0.0)
        return w

    @triton.jit
    def _tiles(e_ptr, gs_ptr, mx_ptr, gy_ptr, y_ptr, g1_ptr, g2_ptr, n, num_t, tails,
               NUM_M: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr,
               PREC: tl.constexpr, MODE: tl.constexpr):  # fmt: skip
        """The tails of one program: Y, the gradient sums dE_1 (I, J1), dE_2 (I, J2).

        MODE "y": Y only (1 product per tail). MODE "grad": the sums weighted by
        the given gY[t, i], Y's product recomputed (so 3 products per tail with
        the "y" launch). MODE "both": Y and the sums weighted by dZ_i/dY[t, i] =
        w[t, i], which do not depend on Z (2 products per tail, one launch): the
        sums are dZ/dE, divided by Z_i afterwards.
        """
        nn = n * n
        ri, rj, m2, off, e1, e2, q = _setup(e_ptr, e_ptr + nn, gs_ptr, mx_ptr, n, BI,
                                            BJ)  # fmt: skip
        qh, ql = _split(q, PREC)  # Q (J1, J2)
        if MODE != "y":
            th, tl_ = _split(tl.trans(q), PREC)  # Q^T (J2, J1)
        acc1 = tl.zeros((BI, BJ), dtype=tl.float32)  # (I, J1)
        acc2 = tl.zeros((BI, BJ), dtype=tl.float32)  # (I, J2)
        t = tl.program_id(0) * tails
        n1, n2, nc = _scales(gs_ptr, mx_ptr, t, rj, n, num_t, NUM_M, BJ)
        for k in range(tails):
            t = tl.program_id(0) * tails + k
            u1 = n1
            u2 = n2
            c = nc
            n1, n2, nc = _scales(gs_ptr, mx_ptr, t + 1, rj, n, num_t, NUM_M, BJ)
            x = _dot(e1 * u1[None, :], qh, ql, BI, BJ, PREC)  # (I, J2)
            rows = (ri < n) & (t < num_t)
            if MODE != "grad":
                y = tl.sum(x * (e2 * u2[None, :]), axis=1) * c  # (I,)
                tl.store(y_ptr + t * n + ri, y, mask=rows)
            if MODE != "y":
                if MODE == "both":
                    wt = _tail_weights(e_ptr, t, ri, n, num_t, NUM_M, BI)
                else:
                    wt = tl.load(gy_ptr + t * n + ri, mask=rows, other=0.0)
                v2 = (wt * c)[:, None] * u2[None, :]  # (I, J2)
                acc2 += x * v2
                h = _dot(e2 * v2, th, tl_, BI, BJ, PREC)  # (I, J1)
                acc1 += h * u1[None, :]
        if MODE != "y":
            out = tl.program_id(0) * nn + off
            tl.store(g1_ptr + out, acc1, mask=m2)
            tl.store(g2_ptr + out, acc2, mask=m2)
