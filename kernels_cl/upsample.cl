/* Upsampling family over (B, H, W) planes: (bi)linear interpolation with PyTorch's source-index
 * rules and its adjoint as a gather (each input pixel sums the outputs that read it, in a fixed
 * order: deterministic, no atomics). 1-D resizing is H = OH = 1. Nearest resizing, which also
 * builds for integer types, is nearest.cl. */
${extensions}
typedef ${t} clg_t;

clg_t clg_linear_src(int o, clg_t scale, int align)
{
    if (align)
        return scale * (clg_t)o;
    const clg_t s = scale * ((clg_t)o + (clg_t)0.5) - (clg_t)0.5;
    return s < (clg_t)0 ? (clg_t)0 : s;
}

/* Weight with which output coordinate o reads input coordinate x along one dim. */
clg_t clg_linear_weight(int o, int x, int N, clg_t scale, int align)
{
    const clg_t s = clg_linear_src(o, scale, align);
    const int i0 = (int)s;
    const int i1 = i0 + (i0 < N - 1 ? 1 : 0);
    const clg_t l1 = s - (clg_t)i0;
    return (i0 == x ? (clg_t)1 - l1 : (clg_t)0) + (i1 == x ? l1 : (clg_t)0);
}

__kernel void bilinear_${sfx}(__global clg_t* y, __global const clg_t* x, int H, int W, int OH,
                              int OW, clg_t SH, clg_t SW, int align, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const long base = (long)(gid / (OW * OH)) * H * W;
    const clg_t sh = clg_linear_src(oh, SH, align);
    const clg_t sw = clg_linear_src(ow, SW, align);
    const int h0 = (int)sh, w0 = (int)sw;
    const int h1 = h0 + (h0 < H - 1 ? 1 : 0), w1 = w0 + (w0 < W - 1 ? 1 : 0);
    const clg_t lh = sh - (clg_t)h0, lw = sw - (clg_t)w0;
    y[gid] = ((clg_t)1 - lh) * (((clg_t)1 - lw) * x[base + h0 * W + w0] + lw * x[base + h0 * W + w1])
             + lh * (((clg_t)1 - lw) * x[base + h1 * W + w0] + lw * x[base + h1 * W + w1]);
}

__kernel void bilinear_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy, int H, int W,
                                   int OH, int OW, clg_t SH, clg_t SW, int align, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int w = gid % W;
    const int h = (gid / W) % H;
    const long obase = (long)(gid / (W * H)) * OH * OW;
    /* outputs reading h have their source within (h - 1, h + 1) */
    const clg_t offh = align ? (clg_t)0 : (clg_t)0.5 * SH - (clg_t)0.5;
    const clg_t offw = align ? (clg_t)0 : (clg_t)0.5 * SW - (clg_t)0.5;
    const int h_lo = SH > (clg_t)0 ? max(0, (int)floor(((clg_t)(h - 1) - offh) / SH) - 1) : 0;
    const int h_hi = SH > (clg_t)0 ? min(OH, (int)ceil(((clg_t)(h + 1) - offh) / SH) + 2) : OH;
    const int w_lo = SW > (clg_t)0 ? max(0, (int)floor(((clg_t)(w - 1) - offw) / SW) - 1) : 0;
    const int w_hi = SW > (clg_t)0 ? min(OW, (int)ceil(((clg_t)(w + 1) - offw) / SW) + 2) : OW;
    clg_t acc = (clg_t)0;
    for (int oh = h_lo; oh < h_hi; ++oh) {
        const clg_t a = clg_linear_weight(oh, h, H, SH, align);
        if (a == (clg_t)0)
            continue;
        for (int ow = w_lo; ow < w_hi; ++ow) {
            const clg_t c = clg_linear_weight(ow, w, W, SW, align);
            if (c != (clg_t)0)
                acc += a * c * gy[obase + oh * OW + ow];
        }
    }
    gx[gid] = acc;
}
