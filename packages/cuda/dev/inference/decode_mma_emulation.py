#!/usr/bin/env python3
"""A lane-level numpy emulation of decode_attention.cu's tensor-core sweep variant (decode_attention_mma_kernel,
FLASHATTN_DECODE_VARIANT 17-20), checked in float64 against a direct reference. It runs one CTA at a time the way
the kernel does, with every index the kernel computes:
  - cp.async of a tile (KT = 16 or 32 keys): lane ln copies chunk ln % 16 of rows 2 i + ln / 16 into the swizzled
    tile (chunk c of row r at chunk c ^ (r % 8)), with the kernel's page walk (one page per KT-aligned tile when
    pages are multiples of KT rows or the cache is contiguous, else a lookup per row) and its zero fill outside
    [jBegin, jEnd) and past D;
  - ldmatrix.x4 and ldmatrix.x4.trans as the PTX ISA defines them (lane l addresses row l % 8 of matrix l / 8;
    without .trans lane T gets elements (T / 4, 2 (T % 4) + {0, 1}) of each matrix, with .trans
    (2 (T % 4) + {0, 1}, T / 4));
  - mma.sync.m16n8k16.row.col as the PTX ISA lays its fragments out (A: a0 a1 = (g, 2t + {0,1}), a2 a3 = (g + 8,
    ..), a4 a5 = (g, 2t + 8 + {0,1}), a6 a7 = (g + 8, ..); B: b0 b1 = (2t + {0,1}, g), b2 b3 = (2t + 8 + {0,1}, g);
    C: c0 c1 = (g, 2t + {0,1}), c2 c3 = (g + 8, ..); g = lane / 4, t = lane % 4): the fragments are gathered into
    matrices, multiplied, and scattered back;
  - the kernel's Q fragments, per-warp tile streams, masks, quad max and exp2 online softmax per lane, P's
    C -> A fragment reuse, the acc rescale, the quad sum of l and the merge of the 4 warps (finish_rows' rule).
It also checks that the 8 rows of every ldmatrix phase fall in 8 different bank groups. Values stay float64 (P
is not rounded to 16 bits) so a wrong index shows as an O(1) error, not as rounding. Layouts only: the GPU's
`decode-bench --check` judges the kernel itself. Run: python3 packages/cuda/dev/inference/decode_mma_emulation.py
"""
import math
import numpy as np

kRows, kWarps, kDPad, kRowChunks = 4, 4, 128, 16
NEG = -np.inf
rng = np.random.default_rng(20261207)


def swz(r, c):  # element (16-bit) offset of chunk c of row r in a swizzled tile
    return (r * kRowChunks * 16 + ((c ^ (r & 7)) << 4)) // 2


def ldmatrix_x4(smem, addrs, trans):
    """addrs: 32 element offsets (lane l: row l % 8 of matrix l / 8). Returns regs[lane][m] = (lo, hi)."""
    mats = [np.array([smem[addrs[8 * m + i]: addrs[8 * m + i] + 8] for i in range(8)]) for m in range(4)]
    regs = [[None] * 4 for _ in range(32)]
    for T in range(32):
        for m in range(4):
            X = mats[m]
            if trans:
                regs[T][m] = (X[2 * (T % 4), T // 4], X[2 * (T % 4) + 1, T // 4])
            else:
                regs[T][m] = (X[T // 4, 2 * (T % 4)], X[T // 4, 2 * (T % 4) + 1])
    return regs


def bank_groups_ok(addrs):  # each 8-lane phase: 8 different 16-byte bank groups (of 8 per 128 bytes)
    return all(len({(addrs[8 * m + i] * 2 // 16) % 8 for i in range(8)}) == 8 for m in range(4))


def mma(d, a, b0, b1):
    """d[lane] = 4 floats (updated), a[lane] = 4 regs (pairs), b0 / b1 [lane] = pairs: D = A B + C, PTX layouts."""
    A = np.zeros((16, 16)); B = np.zeros((16, 8)); C = np.zeros((16, 8))
    for ln in range(32):
        g, t = ln // 4, ln % 4
        for e in range(2):
            A[g, 2 * t + e] = a[ln][0][e]; A[g + 8, 2 * t + e] = a[ln][1][e]
            A[g, 2 * t + 8 + e] = a[ln][2][e]; A[g + 8, 2 * t + 8 + e] = a[ln][3][e]
            B[2 * t + e, g] = b0[ln][e]; B[2 * t + 8 + e, g] = b1[ln][e]
            C[g, 2 * t + e] = d[ln][e]; C[g + 8, 2 * t + e] = d[ln][2 + e]
    Dm = A @ B + C
    for ln in range(32):
        g, t = ln // 4, ln % 4
        d[ln][0], d[ln][1] = Dm[g, 2 * t], Dm[g, 2 * t + 1]
        d[ln][2], d[ln][3] = Dm[g + 8, 2 * t], Dm[g + 8, 2 * t + 1]


def cta(p, q, kpool, vpool, table_b, Lk, s, rb, NSTAGE=3, KT=16):
    """One CTA (split s, row block rb) of one (b, hk): returns (m, l, acc) per row after the warp merge."""
    D, Nq, M, kps, ps, mb = p['D'], p['Nq'], p['M'], p['kps'], p['ps'], p['mb']
    kBeg = s * kps; kEnd = min(kBeg + kps, Lk)
    lo = [0] * kRows; hi = [0] * kRows; jB, jE = Lk, 0
    for r in range(kRows):  # row_key_ranges
        row = rb * kRows + r; a = z = 0
        if row < M:
            diag = row % Nq + Lk - Nq
            a = max(0, diag - p['wl']) if p['wl'] >= 0 else 0
            z = min(Lk, diag + p['wr'] + 1) if p['wr'] >= 0 else Lk
            a = max(a, kBeg); z = max(a, min(z, kEnd))
        lo[r], hi[r] = a, z
        if a < z: jB, jE = min(jB, a), max(jE, z)
    one_page = mb == 1 or ps % KT == 0
    # Q fragments qa[lane][k] = 4 regs
    qa = [[None] * (kDPad // 16) for _ in range(32)]
    for ln in range(32):
        gq, tq = ln // 4, ln % 4
        row = rb * kRows + gq
        qrow = q[row] if (gq < kRows and row < M) else None
        for k in range(kDPad // 16):
            regs = []
            for hf in range(2):
                d0 = 16 * k + 8 * hf + 2 * tq
                regs.append(tuple(qrow[d] if qrow is not None and d < D else 0.0 for d in (d0, d0 + 1)))
            qa[ln][k] = [regs[0], (0.0, 0.0), regs[1], (0.0, 0.0)]
    wm = np.full((kWarps, kRows), NEG); wl = np.zeros((kWarps, kRows)); wacc = np.zeros((kWarps, kRows, kDPad))
    for warp in range(kWarps):
        ring = [np.full(2 * KT * kDPad, np.nan) for _ in range(NSTAGE)]  # unwritten smem: NaN (must never be read)

        def issue(j0, slot):
            sm = ring[slot]
            for ln in range(32):
                half, c = ln // 16, ln % 16
                for i in range(KT // 2):
                    r = 2 * i + half; j = j0 + r
                    ok = c * 8 < D and jB <= j < jE
                    kx = vx = np.zeros(8)
                    if ok:
                        if one_page:
                            blk = 0 if mb == 1 else j0 // ps
                            page, row_in = table_b[blk], j0 - blk * ps + half + 2 * i
                        else:
                            blk = j // ps; page, row_in = table_b[blk], j - blk * ps
                        assert page * ps + row_in == table_b[j // ps] * ps + j % ps, 'page walk'
                        kx = kpool[page, row_in, c * 8: c * 8 + 8]; vx = vpool[page, row_in, c * 8: c * 8 + 8]
                    sm[swz(r, c): swz(r, c) + 8] = kx
                    sm[KT * kDPad + swz(r, c): KT * kDPad + swz(r, c) + 8] = vx

        j0 = (jB & ~(KT - 1)) + warp * KT; step = kWarps * KT; NT = KT // 8
        issued = {}
        for st in range(NSTAGE - 1):
            if j0 + st * step < jE: issue(j0 + st * step, st); issued[st] = j0 + st * step
        m_i = [NEG] * 32; l_i = [0.0] * 32
        acc = [[[0.0] * 4 for _ in range(kDPad // 8)] for _ in range(32)]
        slot = 0
        while j0 < jE:
            assert issued.get(slot) == j0, 'the ring holds this tile'
            jn = j0 + (NSTAGE - 1) * step; ws = NSTAGE - 1 if slot == 0 else slot - 1
            if jn < jE: issue(jn, ws); issued[ws] = jn
            sm = ring[slot]
            sacc = [[[0.0] * 4 for _ in range(32)] for _ in range(NT)]
            for kp in range(kDPad // 32):
                for nt in range(NT):
                    addrs = [swz(nt * 8 + (ln & 7), 4 * kp + (ln >> 3)) for ln in range(32)]
                    assert bank_groups_ok(addrs)
                    kb = ldmatrix_x4(sm, addrs, False)
                    mma(sacc[nt], [qa[ln][2 * kp] for ln in range(32)], [kb[ln][0] for ln in range(32)],
                        [kb[ln][1] for ln in range(32)])
                    mma(sacc[nt], [qa[ln][2 * kp + 1] for ln in range(32)], [kb[ln][2] for ln in range(32)],
                        [kb[ln][3] for ln in range(32)])
            sx = [[[NEG] * 2 for _ in range(NT)] for _ in range(32)]
            mx = [NEG] * 32
            for ln in range(32):
                gq, tq = ln // 4, ln % 4
                my_lo, my_hi = (lo[gq], hi[gq]) if gq < kRows else (0, 0)
                for nt in range(NT):
                    for e in range(2):
                        j = j0 + 8 * nt + 2 * tq + e
                        sx[ln][nt][e] = sacc[nt][ln][e] * p['scale_log2'] if my_lo <= j < my_hi else NEG
                        mx[ln] = max(mx[ln], sx[ln][nt][e])
            mx = [max(mx[ln], mx[ln ^ 1]) for ln in range(32)]
            mx = [max(mx[ln], mx[ln ^ 2]) for ln in range(32)]
            pa = []
            for ln in range(32):
                m_new = max(m_i[ln], mx[ln])
                alpha = 1.0 if m_new == NEG else 2.0 ** (m_i[ln] - m_new)
                pr = [[0.0 if m_new == NEG else 2.0 ** (sx[ln][nt][e] - m_new) for e in range(2)] for nt in range(NT)]
                l_i[ln] = l_i[ln] * alpha + sum(sum(x) for x in pr)
                m_i[ln] = m_new
                for n in range(kDPad // 8):
                    acc[ln][n][0] *= alpha; acc[ln][n][1] *= alpha
                pa.append([[tuple(pr[2 * ks]), (0.0, 0.0), tuple(pr[2 * ks + 1]), (0.0, 0.0)]
                           for ks in range(KT // 16)])
            for ks in range(KT // 16):
                for npair in range(kDPad // 16):
                    addrs = [KT * kDPad + swz(16 * ks + (ln & 7) + 8 * ((ln >> 3) & 1), 2 * npair + (ln >> 4))
                             for ln in range(32)]
                    assert bank_groups_ok(addrs)
                    vb = ldmatrix_x4(sm, addrs, True)
                    for h in range(2):
                        d = [acc[ln][2 * npair + h] for ln in range(32)]
                        mma(d, [pa[ln][ks] for ln in range(32)], [vb[ln][2 * h] for ln in range(32)],
                            [vb[ln][2 * h + 1] for ln in range(32)])
            j0 += step; slot = 0 if slot + 1 == NSTAGE else slot + 1
        l_i = [l_i[ln] + l_i[ln ^ 1] for ln in range(32)]
        l_i = [l_i[ln] + l_i[ln ^ 2] for ln in range(32)]
        for ln in range(32):
            gq, tq = ln // 4, ln % 4
            assert all(acc[ln][n][2] == 0.0 and acc[ln][n][3] == 0.0 for n in range(kDPad // 8)), 'rows g + 8 stay 0'
            if gq >= kRows: continue
            assert m_i[ln] == m_i[ln & ~3], 'm is the same on the quad'
            if tq == 0: wm[warp, gq], wl[warp, gq] = m_i[ln], l_i[ln]
            for n in range(kDPad // 8):
                wacc[warp, gq, 8 * n + 2 * tq: 8 * n + 2 * tq + 2] = acc[ln][n][:2]
    assert not np.isnan(wacc).any()
    return wm, wl, wacc, lo, hi


def check(name, D, Nq, G, lens, ps, S, wl=-1, wr=0, NSTAGE=3, KT=16):
    """One (b, hk) per sequence; out / lse of every row against a direct float64 softmax."""
    M = G * Nq; scale = 1 / math.sqrt(D)
    worst = 0.0
    for b, Lk in enumerate(lens):
        contiguous = ps == 0
        psz = max(Lk, 1) + 7 if contiguous else ps
        npages = (Lk + psz - 1) // psz + 2
        kpool = rng.standard_normal((npages, psz, D)); vpool = rng.standard_normal((npages, psz, D))
        table_b = list(rng.permutation(npages)[: max(1, (Lk + psz - 1) // psz)])
        q = rng.standard_normal((M, D)) * 3  # a larger scale: sharper softmax, more max updates
        kps = -(-Lk // S) if Lk > 0 else 1
        p = dict(D=D, Nq=Nq, M=M, kps=kps, ps=psz, mb=1 if contiguous else len(table_b), wl=wl, wr=wr,
                 scale_log2=scale * math.log2(math.e))
        keys = np.array([kpool[table_b[j // psz], j % psz] for j in range(Lk)]).reshape(Lk, D)
        vals = np.array([vpool[table_b[j // psz], j % psz] for j in range(Lk)]).reshape(Lk, D)
        for rb in range((M + kRows - 1) // kRows):
            parts = [cta(p, q, kpool, vpool, table_b, Lk, s, rb, NSTAGE, KT) for s in range(S)]
            for r in range(kRows):
                row = rb * kRows + r
                if row >= M: continue
                # finish_rows: the warps, then the splits, by the lse rule
                outs, lses = [], []
                for wm, wlw, wacc, _, _ in parts:
                    mx = wm[:, r].max()
                    if mx == NEG: outs.append(np.zeros(D)); lses.append(NEG); continue
                    w = 2.0 ** (wm[:, r] - mx)
                    l = (wlw[:, r] * w).sum(); a = (wacc[:, r, :D] * w[:, None]).sum(0)
                    outs.append(a / l); lses.append((mx + math.log2(l)) * math.log(2))
                lmax = max(lses)
                diag = row % Nq + Lk - Nq
                a = max(0, diag - wl) if wl >= 0 else 0
                z = min(Lk, diag + wr + 1) if wr >= 0 else Lk
                if lmax == NEG:
                    assert a >= z, f'{name}: row {row} saw no key but has {z - a}'
                    continue
                ws = np.array([math.exp(x - lmax) if x != NEG else 0.0 for x in lses]); ws /= ws.sum()
                out = sum(wi * o for wi, o in zip(ws, outs))
                sc = keys[a:z] @ q[row] * scale
                pr = np.exp(sc - sc.max()); ref = pr @ vals[a:z] / pr.sum()
                err = np.abs(out - ref).max()
                lse_ref = sc.max() + math.log(pr.sum())
                lse = lmax + math.log(sum(math.exp(x - lmax) for x in lses if x != NEG))
                worst = max(worst, err, abs(lse - lse_ref))
    ok = worst < 1e-10
    print(f"{'ok  ' if ok else 'FAIL'} {name}: D={D} Nq={Nq} G={G} lens={lens} page={ps or 'contiguous'} S={S} "
          f"window=[{wl},{wr}] KT={KT} NSTAGE={NSTAGE}: max err {worst:.2e}")
    return ok


if __name__ == '__main__':
    results = [
        check('decode', 128, 1, 4, [300, 17], 0, 1),
        check('decode-split', 128, 1, 4, [1000], 0, 7),
        check('decode-paged-split', 128, 1, 4, [411, 0], 16, 3, NSTAGE=2),
        check('paged-window', 128, 1, 4, [250], 256, 2, wl=70, wr=0),
        check('chunk3-odd-page', 128, 3, 4, [90, 40], 5, 1),
        check('d96-split', 96, 1, 4, [170], 0, 4),
        check('d64-mqa', 64, 1, 8, [99], 32, 2),
        check('one-key', 128, 1, 4, [1], 0, 1),
        # KT = 32 (variant 20)
        check('decode-kt32', 128, 1, 4, [300, 17], 0, 1, NSTAGE=2, KT=32),
        check('paged16-split-kt32', 128, 1, 4, [700], 16, 3, NSTAGE=2, KT=32),
        check('chunk3-page32-window-kt32', 128, 3, 4, [200], 32, 2, wl=50, wr=0, NSTAGE=2, KT=32),
        check('d96-kt32', 96, 1, 4, [100], 0, 1, NSTAGE=2, KT=32),
    ]
    print(f"{sum(results)} / {len(results)} passed")
    raise SystemExit(0 if all(results) else 1)
