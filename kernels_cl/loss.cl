/* Cross entropy with class-index targets: log-softmax and NLL fused, one work-item per row.
 * The input is a contiguous (N, C, S) array (S = product of the extra dims); row r = n * S + s
 * reads classes with stride S. The max is subtracted before exp (stable log-sum-exp). */
${extensions}
${fault}
typedef ${real} clg_t;

__kernel void clg_ce_forward_${suffix}(__global clg_t* clg_loss, __global clg_t* clg_wrow,
                                       __global clg_t* clg_lse, __global const clg_t* clg_x,
                                       __global const long* clg_target,
                                       __global const clg_t* clg_weight, int clg_has_weight,
                                       long clg_ignore, clg_t clg_smooth, int clg_n, int clg_c,
                                       int clg_s, __global int* clg_err, int clg_code)
{
    const int row = get_global_id(0);
    if (row >= clg_n * clg_s)
        return;
    const int n = row / clg_s;
    const int s = row - n * clg_s;
    __global const clg_t* x = clg_x + (long)n * clg_c * clg_s + s;
    clg_t m = -INFINITY;
    for (int c = 0; c < clg_c; ++c)
        m = fmax(m, x[(long)c * clg_s]);
    clg_t acc = 0;
    for (int c = 0; c < clg_c; ++c)
        acc += exp(x[(long)c * clg_s] - m);
    const clg_t lse = m + log(acc);
    clg_lse[row] = lse;
    const long y = clg_target[row];
    if (y == clg_ignore) {
        clg_loss[row] = 0;
        clg_wrow[row] = 0;
        return;
    }
    if (y < 0 || y >= clg_c) {
        /* an out-of-range class reads nothing: the flag makes the next sync raise, and the row
         * counts as ignored (the backward gives it no gradient), so no NaN reaches the model */
        CLG_FAULT(clg_err, clg_code, 0, y, clg_c);
        clg_loss[row] = 0;
        clg_wrow[row] = 0;
        return;
    }
    const clg_t wy = clg_has_weight ? clg_weight[y] : (clg_t)1;
    clg_t loss = ((clg_t)1 - clg_smooth) * wy * (lse - x[y * clg_s]);
    if (clg_smooth != (clg_t)0) {
        clg_t sm = 0;
        for (int c = 0; c < clg_c; ++c)
            sm += (clg_has_weight ? clg_weight[c] : (clg_t)1) * (lse - x[(long)c * clg_s]);
        loss += clg_smooth / (clg_t)clg_c * sm;
    }
    clg_loss[row] = loss;
    clg_wrow[row] = wy;
}

/* d loss_r / d x_rc = p_c ((1-e) w_y + e W / C) - (1-e) w_y [c == y] - e w_c / C,
 * scaled by the row's incoming gradient; one work-item per input element. */
__kernel void clg_ce_backward_${suffix}(__global clg_t* clg_dx, __global const clg_t* clg_x,
                                        __global const clg_t* clg_lse,
                                        __global const long* clg_target,
                                        __global const clg_t* clg_g, int clg_g_off,
                                        int clg_g_step,
                                        __global const clg_t* clg_weight, int clg_has_weight,
                                        __global const clg_t* clg_wsum, long clg_ignore,
                                        clg_t clg_smooth, int clg_n, int clg_c, int clg_s)
{
    /* the loss gradient of row r is clg_g[clg_g_off + r * clg_g_step]: step 0 reads a 'mean'
     * or 'sum' reduction's one value for every row (no expanded copy of it) */
    const long i = get_global_id(0);
    if (i >= (long)clg_n * clg_c * clg_s)
        return;
    const int s = (int)(i % clg_s);
    const long t = i / clg_s;
    const int c = (int)(t % clg_c);
    const int n = (int)(t / clg_c);
    const int row = n * clg_s + s;
    const long y = clg_target[row];
    if (y == clg_ignore || y < 0 || y >= clg_c) {
        clg_dx[i] = 0;
        return;
    }
    const clg_t wy = clg_has_weight ? clg_weight[y] : (clg_t)1;
    const clg_t wc = clg_has_weight ? clg_weight[c] : (clg_t)1;
    const clg_t wsum = clg_has_weight ? clg_wsum[0] : (clg_t)clg_c;
    const clg_t p = exp(clg_x[i] - clg_lse[row]);
    const clg_t keep = (clg_t)1 - clg_smooth;
    clg_t d = p * (keep * wy + clg_smooth * wsum / (clg_t)clg_c) - clg_smooth * wc / (clg_t)clg_c;
    if (c == y)
        d -= keep * wy;
    clg_dx[i] = clg_g[clg_g_off + (long)row * clg_g_step] * d;
}
