/* Nearest-neighbour resizing over (B, H, W) planes with PyTorch's source-index rules, and its
 * adjoint as a gather (each input pixel sums the outputs that read it, in a fixed order:
 * deterministic, no atomics). 1-D resizing is H = OH = 1; 3-D resizing is two passes.
 * `exact` picks mode 'nearest-exact' (source floor((o + 0.5) * scale)) over 'nearest'
 * (floor(o * scale)); both clamp to N - 1. Built for float and integer types. */
${extensions}
typedef ${t} clg_t;

int clg_nearest_src(int o, int N, float scale, int exact)
{
    const float s = exact ? ((float)o + 0.5f) * scale : (float)o * scale;
    return min((int)floor(s), N - 1);
}

__kernel void nearest_${sfx}(__global clg_t* y, __global const clg_t* x, int H, int W, int OH,
                             int OW, float SH, float SW, int exact, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const long b = gid / (OW * OH);
    y[gid] = x[(b * H + clg_nearest_src(oh, H, SH, exact)) * W +
               clg_nearest_src(ow, W, SW, exact)];
}

__kernel void nearest_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy, int H, int W,
                                  int OH, int OW, float SH, float SW, int exact, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    const int w = gid % W;
    const int h = (gid / W) % H;
    const long b = gid / (W * H);
    /* outputs reading h lie within [h / SH - 1, (h + 1) / SH); 2 of margin covers rounding */
    const int h_lo = max(0, (int)((float)h / SH) - 2);
    const int h_hi = h == H - 1 ? OH : min(OH, (int)((float)(h + 1) / SH) + 2);
    const int w_lo = max(0, (int)((float)w / SW) - 2);
    const int w_hi = w == W - 1 ? OW : min(OW, (int)((float)(w + 1) / SW) + 2);
    clg_t acc = (clg_t)0;
    for (int oh = h_lo; oh < h_hi; ++oh) {
        if (clg_nearest_src(oh, H, SH, exact) != h)
            continue;
        for (int ow = w_lo; ow < w_hi; ++ow)
            if (clg_nearest_src(ow, W, SW, exact) == w)
                acc += gy[(b * OH + oh) * OW + ow];
    }
    gx[gid] = acc;
}
