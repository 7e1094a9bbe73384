/* im2col and col2im on a 2-D grid, the lowering of convolution to GEMM: dimension 0 walks the
 * pixels of a plane row-major (neighbouring work-items touch neighbouring addresses, and a plane
 * as one dimension fills whole vectors on runtimes that vectorize across work-items where a
 * narrow row would not), dimension 1 the planes (taps for im2col, batch x channel for col2im),
 * split once per work-item. Stride-1 taps skip the divisibility test of the strided case. */
${extensions}
typedef ${t} clg_t;

/* cols (B, C*KH*KW, OH*OW) from x (B, C, H, W) at any strides, or (C*KH*KW, B, OH*OW) (the
 * batch folded into a weight gradient's k) as the column strides say; taps outside x read 0.
 * A work-item walks the batch for one (tap, row, column), so the tap is split once for B stores */
__kernel void im2col3_${sfx}(__global clg_t* cols, int cols_sb, int cols_st,
                             __global const clg_t* x, int x_off,
                             int x_sb, int x_sc, int x_sh, int x_sw, int B,
                             int C, int H, int W, int KH, int KW, int OH, int OW,
                             int SH, int SW, int PH, int PW, int DH, int DW)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int tap = get_global_id(2);
    if (ow >= OW || oh >= OH)       /* a fixed work-group may round the grid up */
        return;
    const int kw = tap % KW;
    const int kh = (tap / KW) % KH;
    const int c = tap / (KW * KH);
    const int h = oh * SH - PH + kh * DH;
    const int w = ow * SW - PW + kw * DW;
    const long step = cols_sb;
    __global clg_t* dst = cols + (long)tap * cols_st + oh * OW + ow;
    if (h >= 0 && h < H && w >= 0 && w < W) {
        __global const clg_t* src = x + x_off + c * x_sc + h * x_sh + w * x_sw;
        for (int b = 0; b < B; ++b)
            dst[b * step] = src[b * x_sb];
    } else {
        for (int b = 0; b < B; ++b)
            dst[b * step] = (clg_t)0;
    }
}

/* x (B, C, H, W), contiguous, = the adjoint of im2col3: each pixel sums the columns of the taps
 * that read it, in a fixed order (deterministic, no atomics) */
__kernel void col2im3_${sfx}(__global clg_t* x, __global const clg_t* cols,
                             int C, int H, int W, int KH, int KW, int OH, int OW,
                             int SH, int SW, int PH, int PW, int DH, int DW)
{
    const int w = get_global_id(0);
    const int h = get_global_id(1);
    const int bc = get_global_id(2);
    if (w >= W || h >= H)
        return;
    const long L = (long)OH * OW;
    __global const clg_t* src = cols + (long)bc * KH * KW * L;
    clg_t acc = (clg_t)0;
    for (int kh = 0; kh < KH; ++kh) {
        int oh = h + PH - kh * DH;
        if (SH != 1) {
            if (oh < 0 || oh % SH != 0)
                continue;
            oh /= SH;
        }
        if (oh < 0 || oh >= OH)
            continue;
        for (int kw = 0; kw < KW; ++kw) {
            int ow = w + PW - kw * DW;
            if (SW != 1) {
                if (ow < 0 || ow % SW != 0)
                    continue;
                ow /= SW;
            }
            if (ow < 0 || ow >= OW)
                continue;
            acc += src[(kh * KW + kw) * L + oh * OW + ow];
        }
    }
    x[((long)bc * H + h) * W + w] = acc;
}
