#!/usr/bin/env python3
"""A line-for-line numpy emulation of the inference kernels' control flow (native/inference/kv_cache_append.cu,
decode_attention.cu, combine_by_lse.cu), checked in float64 against a direct reference on the conformance
scenarios' shapes plus a bench-like decode (Hq = 32, Hk = 8, D = 128, page 256, 29 splits) and an odd one (GQA 3,
D = 24, page 5, window [7, 2], 5 splits). It follows the kernel per CTA (split, row block, kv head, sequence), per
key group (8 per CTA, two per warp, the warp's loop bound), KPI keys per step with the page walk, the per-step
online softmax, the group merge and the split merge (the kernel's fused last-CTA combine, same rule as
combine_by_lse.cu); the 16 lanes of a group are collapsed into vector ops
(their column layout is not emulated). It checks the algorithm without a GPU; the GPU suite checks the kernels.
Run: python3 packages/cuda/dev/inference/decode_emulation.py  (numpy; ~1 min)
"""
import numpy as np, math, random
kThreads, kLanes, kRows = 128, 16, 4
kGroups = kThreads // kLanes
NEG = -np.inf

def decode(p, q, kc, vc, seqlens, table, EPL):
    B, Nq, Hq, Hk, D, S, kps, ps, mb = p['B'], p['Nq'], p['Hq'], p['Hk'], p['D'], p['S'], p['kps'], p['ps'], p['mb']
    KPI = 4 if EPL <= 8 else (2 if EPL <= 16 else 1)
    G = Hq // Hk; M = G * Nq
    rowBlocks = (M + kRows - 1) // kRows
    o_part = np.zeros((S, B, Nq, Hq, D)); l_part = np.full((S, B, Hq, Nq), np.nan)
    out = np.full((B, Nq, Hq, D), np.nan); lse = np.full((B, Hq, Nq), np.nan)
    for b in range(B):
      for hk in range(Hk):
        for bx in range(S * rowBlocks):
          s = bx % S; rb = bx // S
          Lk = seqlens[b] + p['Nnew']
          kBeg = s * kps; kEnd = min(kBeg + kps, Lk)
          lo = [0]*kRows; hi = [0]*kRows; jB = Lk; jE = 0
          for r in range(kRows):
            row = rb*kRows + r; a = z = 0
            if row < M:
              diag = row % Nq + Lk - Nq
              a = max(0, diag - p['wl']) if p['wl'] >= 0 else 0
              z = min(Lk, diag + p['wr'] + 1) if p['wr'] >= 0 else Lk
              a = max(a, kBeg); z = max(a, min(z, kEnd))
            lo[r] = a; hi[r] = z
            if a < z: jB = min(jB, a); jE = max(jE, z)
          qr = np.zeros((kRows, D))
          for r in range(kRows):
            row = rb*kRows + r
            if row < M:
              h = hk*G + row // Nq; i = row % Nq
              qr[r] = q[b, i, h] * p['scale'] * math.log2(math.e)
          gm = np.full((kGroups, kRows), NEG); gl = np.zeros((kGroups, kRows)); gacc = np.zeros((kGroups, kRows, D))
          for g in range(kGroups):
            warp = g // 2
            m_i = np.full(kRows, NEG); l_i = np.zeros(kRows); acc = np.zeros((kRows, D))
            jw = jB + warp*2*KPI
            while jw < jE:
              j0 = jw + (g % 2)*KPI
              blk = j0 // ps; inp = j0 - blk*ps
              K = np.zeros((KPI, D)); V = np.zeros((KPI, D))
              for u in range(KPI):
                if j0 + u < jE:
                  page = table[b*mb + blk]
                  K[u] = kc[page, inp, hk]; V[u] = vc[page, inp, hk]
                inp += 1
                if inp == ps: inp = 0; blk += 1
              sc = K @ qr.T  # (KPI, rows)
              for r in range(kRows):
                mx = NEG
                for u in range(KPI):
                  j = j0 + u
                  if not (lo[r] <= j < hi[r]): sc[u, r] = NEG
                  mx = max(mx, sc[u, r])
                mn = max(m_i[r], mx)
                if mn == NEG:
                  sc[:, r] = 0; continue
                alpha = 2.0 ** (m_i[r] - mn)
                m_i[r] = mn; l_i[r] *= alpha; acc[r] *= alpha
                for u in range(KPI):
                  pu = 2.0 ** (sc[u, r] - mn); sc[u, r] = pu; l_i[r] += pu
              for u in range(KPI):
                for r in range(kRows): acc[r] += sc[u, r] * V[u]
              jw += kGroups*KPI
            gm[g] = m_i; gl[g] = l_i; gacc[g] = acc
          for r in range(kRows):
            row = rb*kRows + r
            if row >= M: continue
            mx = gm[:, r].max()
            l = 0.0; a = np.zeros(D)
            if mx != NEG:
              w = 2.0 ** (gm[:, r] - mx); l = (gl[:, r]*w).sum(); a = (gacc[:, r]*w[:, None]).sum(0)
            o = a / l if l > 0 else np.zeros(D)
            ls = (mx + math.log2(l)) * math.log(2) if l > 0 else NEG
            h = hk*G + row // Nq; i = row % Nq
            if S == 1: out[b, i, h] = o; lse[b, h, i] = ls
            else: o_part[s, b, i, h] = o; l_part[s, b, h, i] = ls
    if S > 1:
      for b in range(B):
        for i in range(Nq):
          for h in range(Hq):
            ls = l_part[:, b, h, i]; M_ = ls.max()
            w = np.where(np.isneginf(ls), 0.0, np.exp(ls - M_)) if M_ != NEG else np.zeros(S)
            sm = w.sum()
            out[b, i, h] = (w[:, None] * o_part[:, b, i, h]).sum(0) * (1/sm if sm > 0 else 0)
            lse[b, h, i] = M_ + math.log(sm) if sm > 0 else NEG
    return out, lse

def reference(p, q, kc, vc, seqlens, table):
    B, Nq, Hq, Hk, D, ps, mb = p['B'], p['Nq'], p['Hq'], p['Hk'], p['D'], p['ps'], p['mb']
    G = Hq // Hk
    out = np.zeros((B, Nq, Hq, D)); lse = np.full((B, Hq, Nq), NEG)
    for b in range(B):
      Lk = seqlens[b] + p['Nnew']
      for h in range(Hq):
        hk = h // G
        for i in range(Nq):
          diag = i + Lk - Nq
          lo = max(0, diag - p['wl']) if p['wl'] >= 0 else 0
          hi = min(Lk, diag + p['wr'] + 1) if p['wr'] >= 0 else Lk
          if lo >= hi: continue
          ks = np.array([kc[table[b*mb + j//ps], j % ps, hk] for j in range(lo, hi)])
          vs = np.array([vc[table[b*mb + j//ps], j % ps, hk] for j in range(lo, hi)])
          s = ks @ q[b, i, h] * p['scale']; m = s.max(); e = np.exp(s - m)
          out[b, i, h] = (e[:, None] * vs).sum(0) / e.sum(); lse[b, h, i] = m + math.log(e.sum())
    return out, lse

def heuristic(B, Nq, Hq, Hk, Lk, P=264, maxS=128):
    units = B*Hk*math.ceil(Nq*(Hq//Hk)/64)
    if units == 0 or units >= 0.8*P: return 1
    most = max(1, min(maxS, Lk//64, math.ceil(P/units)*2))
    eff = lambda s: units*s/(math.ceil(units*s/P)*P)
    best = max(eff(s) for s in range(1, most+1))
    for s in range(1, most+1):
      if eff(s) >= 0.85*best: return s
    return 1

rng = np.random.default_rng(0)
scen = [  # B Nq Hq Hk D lens Nnew ps wl wr splits(0=heur)
  (4,1,4,4,16,[0,1,5,37],1,0,-1,0,0), (4,1,8,2,32,[1,0,17,70],1,16,-1,0,0), (3,1,4,1,8,[3,9,0],0,4,-1,-1,0),
  (2,1,4,2,16,[50,7],1,8,9,0,0), (2,2,4,2,16,[11,4],2,4,-1,0,0), (2,16,2,1,16,[6,6],16,0,-1,0,0),
  (3,5,2,2,16,[0,3,20],5,0,-1,0,0), (2,6,4,2,8,[2,13],6,4,4,0,0), (2,4,2,1,8,[1,9],0,0,-1,0,0),
  (2,1,4,2,32,[200,63],1,32,-1,0,3), (3,2,2,2,16,[0,2,30],1,0,-1,-1,8), (1,1,2,1,64,[700],1,64,-1,0,0),
  (1,1,32,8,128,[3000],0,256,-1,0,0), (2,3,12,4,24,[100,37],3,5,7,2,5),
]
worst = 0
for (B,Nq,Hq,Hk,D,lens,Nnew,ps,wl,wr,ns) in scen:
  maxL = max(lens) + Nnew
  if ps: mb = -(-maxL//ps) + 1; pages = B*mb + 2; table = rng.permutation(pages)[:B*mb]; shape = (pages, ps)
  else: mb = 1; ps = maxL + 3; table = np.arange(B); shape = (B, ps)
  kc = rng.standard_normal(shape + (Hk, D)); vc = rng.standard_normal(shape + (Hk, D))
  q = rng.standard_normal((B, Nq, Hq, D))
  kn = rng.standard_normal((B, Nnew, Hk, D)); vn = rng.standard_normal((B, Nnew, Hk, D))
  # append
  for b in range(B):
    for i in range(Nnew):
      j = lens[b] + i; kc[table[b*mb + j//ps], j % ps] = kn[b, i]; vc[table[b*mb + j//ps], j % ps] = vn[b, i]
  S = ns if ns else heuristic(B, Nq, Hq, Hk, maxL)
  S = max(1, min(S, 128, maxL)); kps = max(1, -(-maxL // S))
  p = dict(B=B,Nq=Nq,Hq=Hq,Hk=Hk,D=D,S=S,kps=kps,ps=ps,mb=mb,Nnew=Nnew,wl=wl,wr=wr,scale=1/math.sqrt(D))
  for EPL in ([4, 16] if D <= 64 else [16]) + ([8] if D <= 128 else []):
    if EPL*16 < D: continue
    o, l = decode(p, q, kc, vc, lens, table, EPL)
    ro, rl = reference(p, q, kc, vc, lens, table)
    assert not np.isnan(o).any() and not np.isnan(l).any(), 'unwritten'
    e1 = np.abs(o - ro).max(); same_inf = (np.isneginf(l) == np.isneginf(rl)).all()
    fin = ~np.isneginf(rl); e2 = np.abs(l[fin] - rl[fin]).max() if fin.any() else 0
    worst = max(worst, e1, e2)
    print(f"B{B} q{Nq} h{Hq}/{Hk} d{D} lens{lens}+{Nnew} ps{ps} w[{wl},{wr}] S={S} EPL={EPL}: out err {e1:.1e} lse err {e2:.1e} inf-match {same_inf}")
    assert e1 < 1e-9 and e2 < 1e-9 and same_inf
print('worst', worst)
