/* Convolution family: im2col gathers every receptive field of a (B, C, H, W) input into the
 * columns of a (B, C*KH*KW, OH*OW) matrix, so a convolution is one batched GEMM; col2im is its
 * adjoint. col2im is a gather too: each input pixel loops over the kernel taps that can reach
 * it and sums their columns in a fixed order, so the result is deterministic (no atomics).
 * The pad pair maps out-of-range coordinates for the reflect/replicate/circular padding modes.
 * One work-item per output element; sizes arrive as arguments, so one program per dtype. */
${extensions}
typedef ${t} clg_t;

__kernel void im2col_${sfx}(__global clg_t* cols, __global const clg_t* x, int x_off,
                            int x_sb, int x_sc, int x_sh, int x_sw,
                            int C, int H, int W, int KH, int KW, int OH, int OW,
                            int SH, int SW, int PH, int PW, int DH, int DW, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    int rest = gid;
    const int ow = rest % OW; rest /= OW;
    const int oh = rest % OH; rest /= OH;
    const int kw = rest % KW; rest /= KW;
    const int kh = rest % KH; rest /= KH;
    const int c = rest % C;
    const int b = rest / C;
    const int h = oh * SH - PH + kh * DH;
    const int w = ow * SW - PW + kw * DW;
    clg_t v = (clg_t)0;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = x[x_off + b * x_sb + c * x_sc + h * x_sh + w * x_sw];
    cols[gid] = v;
}

__kernel void col2im_${sfx}(__global clg_t* x, __global const clg_t* cols,
                            int C, int H, int W, int KH, int KW, int OH, int OW,
                            int SH, int SW, int PH, int PW, int DH, int DW, int n)
{
    const int gid = get_global_id(0);
    if (gid >= n)
        return;
    int rest = gid;
    const int w = rest % W; rest /= W;
    const int h = rest % H; rest /= H;
    const int c = rest % C;
    const int b = rest / C;
    const int L = OH * OW;
    clg_t acc = (clg_t)0;
    for (int kh = 0; kh < KH; ++kh) {
        const int th = h + PH - kh * DH;
        if (th < 0 || th % SH != 0 || th / SH >= OH)
            continue;
        const int oh = th / SH;
        for (int kw = 0; kw < KW; ++kw) {
            const int tw = w + PW - kw * DW;
            if (tw < 0 || tw % SW != 0 || tw / SW >= OW)
                continue;
            const int row = (c * KH + kh) * KW + kw;
            acc += cols[((long)b * C * KH * KW + row) * L + oh * OW + tw / SW];
        }
    }
    x[gid] = acc;
}

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
