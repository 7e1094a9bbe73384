/* Pooling family over (B, H, W) planes (1-D pooling is H = 1). A window along one dim is either
 * regular (start o*S - P, K taps D apart) or adaptive (PyTorch's [floor(o*N/O), ceil((o+1)*N/O))).
 * Backward kernels are gathers: each input pixel visits only the outputs whose windows can hold
 * it and sums their gradients in a fixed order, so results are deterministic (no atomics).
 * Built for float types and, for max pooling and (int64) average pooling, integer types. */
${extensions}
typedef ${t} clg_t;
/* the identity of max and the NaN test of clg_t (0 for integer types) */
#define CLG_LOWEST ${lowest}
#define CLG_ISNAN(v) ${isnan}

int clg_win_start(int o, int N, int O, int K, int S, int P, int adaptive)
{
    return adaptive ? (o * N) / O : o * S - P;
}

int clg_win_taps(int o, int N, int O, int K, int adaptive)
{
    return adaptive ? ((o + 1) * N + O - 1) / O - (o * N) / O : K;
}

/* How many candidate outputs the loop of clg_win_out visits for input coordinate x. */
int clg_cand_count(int x, int N, int O, int K, int adaptive)
{
    return adaptive ? ((x + 1) * O + N - 1) / N - (x * O) / N : K;
}

/* The i-th candidate output whose window holds input coordinate x, or -1. */
int clg_win_out(int i, int x, int N, int O, int K, int S, int P, int D, int adaptive)
{
    if (adaptive)
        return (x * O) / N + i;
    const int t = x + P - i * D;
    if (t < 0 || t % S != 0 || t / S >= O)
        return -1;
    return t / S;
}

__kernel void max_pool_${sfx}(__global clg_t* y, __global long* idx, __global const clg_t* x,
                              int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                              int PH, int PW, int DH, int DW, int adaptive, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const long base = (long)(gid / (OW * OH)) * H * W;
    const int hs = clg_win_start(oh, H, OH, KH, SH, PH, adaptive);
    const int ws = clg_win_start(ow, W, OW, KW, SW, PW, adaptive);
    const int nh = clg_win_taps(oh, H, OH, KH, adaptive);
    const int nw = clg_win_taps(ow, W, OW, KW, adaptive);
    const int dh = adaptive ? 1 : DH, dw = adaptive ? 1 : DW;
    clg_t best = CLG_LOWEST;
    long arg = -1;
    for (int i = 0; i < nh; ++i) {
        const int h = hs + i * dh;
        if (h < 0 || h >= H)
            continue;
        for (int j = 0; j < nw; ++j) {
            const int w = ws + j * dw;
            if (w < 0 || w >= W)
                continue;
            const clg_t v = x[base + h * W + w];
            /* NaN wins, like PyTorch's kernels */
            if (arg < 0 || v > best || CLG_ISNAN(v)) {
                best = v;
                arg = h * W + w;
            }
        }
    }
    y[gid] = best;
    idx[gid] = arg;
}

__kernel void max_pool_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy,
                                   __global const long* idx,
                                   int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                                   int PH, int PW, int DH, int DW, int adaptive, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int w = gid % W;
    const int h = (gid / W) % H;
    const long obase = (long)(gid / (W * H)) * OH * OW;
    const long me = h * W + w;
    const int ch = clg_cand_count(h, H, OH, KH, adaptive);
    const int cw = clg_cand_count(w, W, OW, KW, adaptive);
    clg_t acc = (clg_t)0;
    for (int i = 0; i < ch; ++i) {
        const int oh = clg_win_out(i, h, H, OH, KH, SH, PH, DH, adaptive);
        if (oh < 0 || oh >= OH)
            continue;
        for (int j = 0; j < cw; ++j) {
            const int ow = clg_win_out(j, w, W, OW, KW, SW, PW, DW, adaptive);
            if (ow < 0 || ow >= OW)
                continue;
            const long o = obase + oh * OW + ow;
            if (idx[o] == me)
                acc += gy[o];
        }
    }
    gx[gid] = acc;
}

/* p / N for 0 <= p < 2**21 without an integer division (scalar code when a CPU compiler
 * vectorizes across work-items): (p + 0.5) / N lies at least 0.5 / N from an integer, and the
 * product's rounding error is below (p / N) * 2**-23 < 0.25 / N. The launch checks the bound. */
#define CLG_SPLIT(p, inv) ((int)(((float)(p) + 0.5f) * (inv)))

/* Max pooling whose windows tile the planes exactly (see max_pool_grad_tiled): one work-item per
 * output, split into plane and position without dividing; no bounds tests, no window search. The same ties and NaN rule
 * as max_pool (the first maximum wins, a NaN wins over numbers). */
__kernel void max_pool_tiled_${sfx}(__global clg_t* y, __global long* idx,
                                    __global const clg_t* x, int OH, int OW, int KH, int KW,
                                    float inv_ow, float inv_plane, int n)
{
    const int o = get_global_id(0);         /* b * OH * OW + oh * OW + ow, see CLG_SPLIT */
    if (o >= n)
        return;
    const int b = CLG_SPLIT(o, inv_plane), p = o - b * OH * OW;
    const int oh = CLG_SPLIT(p, inv_ow), ow = p - oh * OW;
    const int W = OW * KW;
    __global const clg_t* plane = x + (long)b * OH * KH * W;
    long arg = (long)oh * KH * W + (long)ow * KW;
    clg_t best = plane[arg];
    for (int i = 0; i < KH; ++i) {
        for (int j = 0; j < KW; ++j) {
            const long at = (long)(oh * KH + i) * W + ow * KW + j;
            const clg_t v = plane[at];
            if (v > best || CLG_ISNAN(v)) {
                best = v;
                arg = at;
            }
        }
    }
    y[o] = best;
    idx[o] = arg;
}

/* The gradient of max pooling whose windows tile the planes exactly (stride = kernel size, no
 * padding or dilation, H = OH * KH, W = OW * KW): each output writes its own window, the
 * gradient where its argmax is and 0 elsewhere, so every input is written once, with no search.
 * The range of max_pool_tiled. */
__kernel void max_pool_grad_tiled_${sfx}(__global clg_t* gx, __global const clg_t* gy,
                                         __global const long* idx, int OH, int OW, int KH,
                                         int KW, float inv_ow, float inv_plane, int n)
{
    const int o = get_global_id(0);
    if (o >= n)
        return;
    const int b = CLG_SPLIT(o, inv_plane), p = o - b * OH * OW;
    const int oh = CLG_SPLIT(p, inv_ow), ow = p - oh * OW;
    const int W = OW * KW;
    const clg_t v = gy[o];
    const long arg = idx[o];
    __global clg_t* plane = gx + (long)b * OH * KH * W;
    for (int i = 0; i < KH; ++i) {
        for (int j = 0; j < KW; ++j) {
            const long me = (long)(oh * KH + i) * W + ow * KW + j;
            plane[me] = me == arg ? v : (clg_t)0;
        }
    }
}

/* The divisor of average-pooling output (oh, ow), following PyTorch's avg_pool2d. */
clg_t clg_avg_div(int oh, int ow, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                  int PH, int PW, int adaptive, int include_pad, int divisor)
{
    if (adaptive)
        return (clg_t)(clg_win_taps(oh, H, OH, KH, 1) * clg_win_taps(ow, W, OW, KW, 1));
    if (divisor > 0)
        return (clg_t)divisor;
    int hs = oh * SH - PH, ws = ow * SW - PW;
    int he = min(hs + KH, H + PH), we = min(ws + KW, W + PW);
    const int padded = (he - hs) * (we - ws);
    hs = max(hs, 0); ws = max(ws, 0);
    he = min(he, H); we = min(we, W);
    return (clg_t)(include_pad ? padded : (he - hs) * (we - ws));
}

__kernel void avg_pool_${sfx}(__global clg_t* y, __global const clg_t* x,
                              int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                              int PH, int PW, int adaptive, int include_pad, int divisor, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const long base = (long)(gid / (OW * OH)) * H * W;
    const int hs = clg_win_start(oh, H, OH, KH, SH, PH, adaptive);
    const int ws = clg_win_start(ow, W, OW, KW, SW, PW, adaptive);
    const int nh = clg_win_taps(oh, H, OH, KH, adaptive);
    const int nw = clg_win_taps(ow, W, OW, KW, adaptive);
    clg_t acc = (clg_t)0;
    for (int h = max(hs, 0); h < min(hs + nh, H); ++h)
        for (int w = max(ws, 0); w < min(ws + nw, W); ++w)
            acc += x[base + h * W + w];
    y[gid] = acc / clg_avg_div(oh, ow, H, W, OH, OW, KH, KW, SH, SW, PH, PW, adaptive,
                               include_pad, divisor);
}

__kernel void avg_pool_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy,
                                   int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
                                   int PH, int PW, int adaptive, int include_pad, int divisor,
                                   int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int w = gid % W;
    const int h = (gid / W) % H;
    const long obase = (long)(gid / (W * H)) * OH * OW;
    const int ch = clg_cand_count(h, H, OH, KH, adaptive);
    const int cw = clg_cand_count(w, W, OW, KW, adaptive);
    clg_t acc = (clg_t)0;
    for (int i = 0; i < ch; ++i) {
        const int oh = clg_win_out(i, h, H, OH, KH, SH, PH, 1, adaptive);
        if (oh < 0 || oh >= OH)
            continue;
        for (int j = 0; j < cw; ++j) {
            const int ow = clg_win_out(j, w, W, OW, KW, SW, PW, 1, adaptive);
            if (ow < 0 || ow >= OW)
                continue;
            acc += gy[obase + oh * OW + ow] /
                   clg_avg_div(oh, ow, H, W, OH, OW, KH, KW, SH, SW, PH, PW, adaptive,
                               include_pad, divisor);
        }
    }
    gx[gid] = acc;
}

/* max_unpool: y is zero-filled first; each input element lands at its plane index. */
__kernel void unpool_${sfx}(__global clg_t* y, __global const clg_t* x, __global const long* idx,
                            int L, int OL, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const long i = idx[gid];
    if (i >= 0 && i < OL)
        y[(long)(gid / L) * OL + i] = x[gid];
}

/* The adjoint of unpool: each input element reads the gradient at its plane index. */
__kernel void unpool_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy,
                                 __global const long* idx, int L, int OL, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const long i = idx[gid];
    gx[gid] = (i >= 0 && i < OL) ? gy[(long)(gid / L) * OL + i] : (clg_t)0;
}
