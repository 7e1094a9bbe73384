/* Padding for convolution: the pad pair maps out-of-range coordinates for the
 * reflect/replicate/circular padding modes (im2col and col2im live in conv_cols.cl).
 * One work-item per output element; sizes arrive as arguments, so one program per dtype. */
${extensions}
typedef ${t} clg_t;

/* Source coordinate of padded coordinate i in [0, n) under `mode`:
 * 0 zeros (-1 when outside), 1 reflect, 2 replicate, 3 circular. */
int clg_pad_src(int i, int n, int mode)
{
    if (i >= 0 && i < n)
        return i;
    if (mode == 0)
        return -1;
    if (mode == 1)
        return i < 0 ? -i : 2 * (n - 1) - i;
    if (mode == 2)
        return i < 0 ? 0 : n - 1;
    return ((i % n) + n) % n;
}

__kernel void pad_${sfx}(__global clg_t* y, __global const clg_t* x,
                         int H, int W, int YH, int YW, int PT, int PL, int mode, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    int rest = gid;
    const int yw = rest % YW; rest /= YW;
    const int yh = rest % YH;
    const int b = rest / YH;
    const int h = clg_pad_src(yh - PT, H, mode);
    const int w = clg_pad_src(yw - PL, W, mode);
    y[gid] = (h < 0 || w < 0) ? (clg_t)0 : x[((long)b * H + h) * W + w];
}

/* Adjoint of pad: each source pixel sums the padded pixels that copy it. Only its own
 * position and the pad borders can map to it, so the loops visit those alone. */
__kernel void pad_grad_${sfx}(__global clg_t* gx, __global const clg_t* gy,
                              int H, int W, int YH, int YW, int PT, int PL, int mode, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    int rest = gid;
    const int w = rest % W; rest /= W;
    const int h = rest % H;
    const int b = rest / H;
    const int PB = YH - H - PT, PR = YW - W - PL;
    clg_t acc = (clg_t)0;
    for (int i = -1; i < PT + PB; ++i) {
        const int yh = i < 0 ? h + PT : (i < PT ? i : H + PT + (i - PT));
        if (yh < 0 || yh >= YH || clg_pad_src(yh - PT, H, mode) != h || (i >= 0 && yh == h + PT))
            continue;
        for (int j = -1; j < PL + PR; ++j) {
            const int yw = j < 0 ? w + PL : (j < PL ? j : W + PL + (j - PL));
            if (yw < 0 || yw >= YW || clg_pad_src(yw - PL, W, mode) != w ||
                (j >= 0 && yw == w + PL))
                continue;
            acc += gy[((long)b * YH + yh) * YW + yw];
        }
    }
    gx[gid] = acc;
}
