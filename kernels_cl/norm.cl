/* Normalisation over rows of a contiguous (A, R, B) array: row r holds the A * B elements
 * x[a, r, b]. LayerNorm is A = 1 (rows = leading dims, B = normalized size); BatchNorm is
 * A = N, R = C, B = spatial size. One work-item per row; two passes for a stable variance.
 * The affine weight and bias are indexed per row (BatchNorm) or per b (LayerNorm). */
${extensions}
typedef ${real} clg_t;

#define CLG_AT(a, r, b) (((long)(a) * clg_r + (r)) * clg_b + (b))

__kernel void clg_norm_forward_${suffix}(__global clg_t* clg_y, __global clg_t* clg_mean,
                                         __global clg_t* clg_rstd, __global clg_t* clg_var,
                                         __global const clg_t* clg_x,
                                         __global const clg_t* clg_w,
                                         __global const clg_t* clg_bias, int clg_affine,
                                         int clg_per_row, clg_t clg_eps, int clg_a, int clg_r,
                                         int clg_b)
{
    const int r = get_global_id(0);
    if (r >= clg_r)
        return;
    const long count = (long)clg_a * clg_b;
    clg_t sum = 0;
    for (int a = 0; a < clg_a; ++a)
        for (int b = 0; b < clg_b; ++b)
            sum += clg_x[CLG_AT(a, r, b)];
    const clg_t mean = sum / (clg_t)count;
    clg_t sq = 0;
    for (int a = 0; a < clg_a; ++a)
        for (int b = 0; b < clg_b; ++b) {
            const clg_t d = clg_x[CLG_AT(a, r, b)] - mean;
            sq += d * d;
        }
    const clg_t var = sq / (clg_t)count;
    const clg_t rstd = rsqrt(var + clg_eps);
    clg_mean[r] = mean;
    clg_rstd[r] = rstd;
    clg_var[r] = var;
    for (int a = 0; a < clg_a; ++a)
        for (int b = 0; b < clg_b; ++b) {
            const long i = CLG_AT(a, r, b);
            clg_t v = (clg_x[i] - mean) * rstd;
            if (clg_affine) {
                const int k = clg_per_row ? r : b;
                v = v * clg_w[k] + clg_bias[k];
            }
            clg_y[i] = v;
        }
}

/* dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * w; per-row affine also
 * writes the row's weight and bias gradients (sum of g * xhat and of g). */
__kernel void clg_norm_backward_${suffix}(__global clg_t* clg_dx, __global clg_t* clg_dw,
                                          __global clg_t* clg_db, __global const clg_t* clg_g,
                                          __global const clg_t* clg_x,
                                          __global const clg_t* clg_mean,
                                          __global const clg_t* clg_rstd,
                                          __global const clg_t* clg_w, int clg_affine,
                                          int clg_per_row, int clg_a, int clg_r, int clg_b)
{
    const int r = get_global_id(0);
    if (r >= clg_r)
        return;
    const long count = (long)clg_a * clg_b;
    const clg_t mean = clg_mean[r];
    const clg_t rstd = clg_rstd[r];
    clg_t s1 = 0, s2 = 0, sg = 0, sgx = 0;
    for (int a = 0; a < clg_a; ++a)
        for (int b = 0; b < clg_b; ++b) {
            const long i = CLG_AT(a, r, b);
            const clg_t xh = (clg_x[i] - mean) * rstd;
            const clg_t g = clg_g[i];
            const clg_t gw = clg_affine ? g * clg_w[clg_per_row ? r : b] : g;
            s1 += gw;
            s2 += gw * xh;
            sg += g;
            sgx += g * xh;
        }
    const clg_t m1 = s1 / (clg_t)count;
    const clg_t m2 = s2 / (clg_t)count;
    for (int a = 0; a < clg_a; ++a)
        for (int b = 0; b < clg_b; ++b) {
            const long i = CLG_AT(a, r, b);
            const clg_t xh = (clg_x[i] - mean) * rstd;
            const clg_t gw = clg_affine ? clg_g[i] * clg_w[clg_per_row ? r : b] : clg_g[i];
            clg_dx[i] = rstd * (gw - m1 - xh * m2);
        }
    if (clg_affine && clg_per_row) {
        clg_dw[r] = sgx;
        clg_db[r] = sg;
    }
}

/* The affine weight's and bias's gradients where they are indexed per b (LayerNorm): one
 * work-item per b sums g * x_hat and g over every (a, r), so neighbouring work-items read
 * neighbouring elements (the backward above has one work-item per row). */
__kernel void clg_norm_wgrad_${suffix}(__global clg_t* clg_dw, __global clg_t* clg_db,
                                       __global const clg_t* clg_g, __global const clg_t* clg_x,
                                       __global const clg_t* clg_mean,
                                       __global const clg_t* clg_rstd, int clg_a, int clg_r,
                                       int clg_b)
{
    const int b = get_global_id(0);
    if (b >= clg_b)
        return;
    clg_t sw = 0, sb = 0;
    for (int a = 0; a < clg_a; ++a)
        for (int r = 0; r < clg_r; ++r) {
            const long i = CLG_AT(a, r, b);
            const clg_t g = clg_g[i];
            sw += g * ((clg_x[i] - clg_mean[r]) * clg_rstd[r]);
            sb += g;
        }
    clg_dw[b] = sw;
    clg_db[b] = sb;
}
