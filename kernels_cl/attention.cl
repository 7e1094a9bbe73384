/* Scaled dot-product attention forward, streaming over keys with an online softmax: one
 * work-item per (batch*head n, query row i) keeps a running maximum m, a running sum l and an
 * unnormalised output row in private memory, rescaling them when m grows, so the (L, S) score
 * matrix is never stored. q (N, L, E), k (N, S, E), v (N, S, Ev), out (N, L, Ev) are contiguous;
 * the optional additive mask is read through (batch, head, row, column) strides (0 where it
 * broadcasts). A row whose every key is masked out gives zeros, as PyTorch's attention does. */
${extensions}
typedef ${real} clg_t;
#define CLG_DV ${dv}

__kernel void clg_sdpa_fwd_${suffix}(__global clg_t* clg_out,
                                     __global const clg_t* clg_q, __global const clg_t* clg_k,
                                     __global const clg_t* clg_v, __global const clg_t* clg_mask,
                                     int clg_has_mask, long clg_moff, long clg_mb, long clg_mh,
                                     long clg_ml, long clg_ms, int clg_causal, clg_t clg_scale,
                                     int clg_N, int clg_H, int clg_L, int clg_S, int clg_E,
                                     int clg_Ev)
{
    const long gid = get_global_id(0);
    if (gid >= (long)clg_N * clg_L)
        return;
    const long n = gid / clg_L, i = gid % clg_L;
    const long b = n / clg_H, h = n % clg_H;
    __global const clg_t* q = clg_q + gid * clg_E;
    __global const clg_t* kb = clg_k + n * clg_S * clg_E;
    __global const clg_t* vb = clg_v + n * clg_S * clg_Ev;
    clg_t acc[CLG_DV];
    for (int e = 0; e < clg_Ev; ++e)
        acc[e] = (clg_t)0;
    clg_t m = -INFINITY, l = (clg_t)0;
    const long jend = clg_causal ? min((long)clg_S, i + 1) : (long)clg_S;
    for (long j = 0; j < jend; ++j) {
        __global const clg_t* kr = kb + j * clg_E;
        clg_t s = (clg_t)0;
        for (int e = 0; e < clg_E; ++e)
            s += q[e] * kr[e];
        s *= clg_scale;
        if (clg_has_mask)
            s += clg_mask[clg_moff + b * clg_mb + h * clg_mh + i * clg_ml + j * clg_ms];
        if (s == -INFINITY)
            continue;                      /* contributes exp(-inf) = 0; avoids inf - inf */
        __global const clg_t* vr = vb + j * clg_Ev;
        if (s > m) {
            const clg_t corr = exp(m - s);
            l = l * corr + (clg_t)1;
            for (int e = 0; e < clg_Ev; ++e)
                acc[e] = acc[e] * corr + vr[e];
            m = s;
        } else {
            const clg_t p = exp(s - m);
            l += p;
            for (int e = 0; e < clg_Ev; ++e)
                acc[e] += p * vr[e];
        }
    }
    __global clg_t* o = clg_out + gid * clg_Ev;
    const clg_t inv = l > (clg_t)0 ? (clg_t)1 / l : (clg_t)0;
    for (int e = 0; e < clg_Ev; ++e)
        o[e] = acc[e] * inv;
}

/* The probabilities of the GEMM formulation, in place: row (n, i) of clg_p holds the scores
 * q_i . k_j (from a batched GEMM) and leaves holding softmax_j(scale * s + mask) with keys past
 * i removed when causal; a row whose every key is masked out becomes zeros. One work-item per
 * row, three passes over its S scores (max, exponentials and their sum, normalisation). */
__kernel void clg_sdpa_probs_${suffix}(__global clg_t* clg_p, __global const clg_t* clg_mask,
                                       int clg_has_mask, long clg_moff, long clg_mb, long clg_mh,
                                       long clg_ml, long clg_ms, int clg_causal, clg_t clg_scale,
                                       int clg_N, int clg_H, int clg_L, int clg_S)
{
    const long gid = get_global_id(0);
    if (gid >= (long)clg_N * clg_L)
        return;
    const long n = gid / clg_L, i = gid % clg_L;
    const long b = n / clg_H, h = n % clg_H;
    __global clg_t* row = clg_p + gid * clg_S;
    const long jend = clg_causal ? min((long)clg_S, i + 1) : (long)clg_S;
    __global const clg_t* mrow = clg_mask + clg_moff + b * clg_mb + h * clg_mh + i * clg_ml;
    clg_t m = -INFINITY;
    for (long j = 0; j < jend; ++j) {
        clg_t s = row[j] * clg_scale;
        if (clg_has_mask)
            s += mrow[j * clg_ms];
        row[j] = s;
        m = (isnan(s) || s > m) ? s : m;       /* a NaN score makes the row NaN, as in softmax */
    }
    if (m == -INFINITY) {                      /* every key masked out: no probabilities */
        for (long j = 0; j < clg_S; ++j)
            row[j] = (clg_t)0;
        return;
    }
    clg_t l = (clg_t)0;
    for (long j = 0; j < jend; ++j) {
        const clg_t e = exp(row[j] - m);
        row[j] = e;
        l += e;
    }
    const clg_t inv = (clg_t)1 / l;
    for (long j = 0; j < jend; ++j)
        row[j] *= inv;
    for (long j = jend; j < clg_S; ++j)
        row[j] = (clg_t)0;
}

/* The scores' gradient from the probabilities' one, in place: ds = scale * p * (dp - <dp, p>)
 * per row of S (softmax's backward with the scale folded in). */
__kernel void clg_sdpa_probs_bwd_${suffix}(__global clg_t* clg_dp, __global const clg_t* clg_p,
                                           clg_t clg_scale, long clg_rows, int clg_S)
{
    const long gid = get_global_id(0);
    if (gid >= clg_rows)
        return;
    __global clg_t* d = clg_dp + gid * clg_S;
    __global const clg_t* p = clg_p + gid * clg_S;
    clg_t dot = (clg_t)0;
    for (int j = 0; j < clg_S; ++j)
        dot += d[j] * p[j];
    for (int j = 0; j < clg_S; ++j)
        d[j] = clg_scale * p[j] * (d[j] - dot);
}
