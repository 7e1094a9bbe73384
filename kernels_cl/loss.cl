/* Cross entropy with class-index targets: log-softmax and NLL fused, one work-item per row.
 * The input is a contiguous (N, C, S) array (S = product of the extra dims); row r = n * S + s
 * reads classes with stride S. The max is subtracted before exp (stable log-sum-exp). */
${extensions}
${fault}
typedef ${real} clg_t;

/* Row r's loss; writes its log-sum-exp to clg_lse[r] and its weight (0 when ignored) to *wrow. */
inline clg_t clg_ce_row(int row, clg_t* wrow, __global clg_t* clg_lse, __global const clg_t* clg_x,
                        __global const long* clg_target, __global const clg_t* clg_weight,
                        int clg_has_weight, long clg_ignore, clg_t clg_smooth, int clg_c,
                        int clg_s, __global int* clg_err, int clg_code)
{
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
    *wrow = 0;
    const long y = clg_target[row];
    if (y == clg_ignore)
        return 0;
    if (y < 0 || y >= clg_c) {
        /* an out-of-range class reads nothing: the flag makes the next sync raise, and the row
         * counts as ignored (the backward gives it no gradient), so no NaN reaches the model */
        CLG_FAULT(clg_err, clg_code, 0, y, clg_c);
        return 0;
    }
    const clg_t wy = clg_has_weight ? clg_weight[y] : (clg_t)1;
    clg_t loss = ((clg_t)1 - clg_smooth) * wy * (lse - x[y * clg_s]);
    if (clg_smooth != (clg_t)0) {
        clg_t sm = 0;
        for (int c = 0; c < clg_c; ++c)
            sm += (clg_has_weight ? clg_weight[c] : (clg_t)1) * (lse - x[(long)c * clg_s]);
        loss += clg_smooth / (clg_t)clg_c * sm;
    }
    *wrow = wy;
    return loss;
}

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
    clg_t w;
    clg_loss[row] = clg_ce_row(row, &w, clg_lse, clg_x, clg_target, clg_weight, clg_has_weight,
                               clg_ignore, clg_smooth, clg_c, clg_s, clg_err, clg_code);
    clg_wrow[row] = w;
}

/* All rows reduced to one value by one work-group (launched with one group of any size L):
 * clg_out[0] = sum of the row losses, divided by clg_out[1] = the sum of the row weights when
 * clg_mean ('mean'); work-item l takes rows l, l + L, ... and the group then adds the partial
 * sums pairwise in local memory (clg_acc: 2 L values), always in the same order. */
__kernel void clg_ce_reduce_${suffix}(__global clg_t* clg_out, __global clg_t* clg_lse,
                                      __global const clg_t* clg_x,
                                      __global const long* clg_target,
                                      __global const clg_t* clg_weight, int clg_has_weight,
                                      long clg_ignore, clg_t clg_smooth, int clg_n, int clg_c,
                                      int clg_s, int clg_mean, __global int* clg_err,
                                      int clg_code, __local clg_t* clg_acc)
{
    const int lid = get_local_id(0);
    const int L = get_local_size(0);
    clg_t sum = 0, wsum = 0;
    for (int row = lid; row < clg_n * clg_s; row += L) {
        clg_t w;
        sum += clg_ce_row(row, &w, clg_lse, clg_x, clg_target, clg_weight, clg_has_weight,
                          clg_ignore, clg_smooth, clg_c, clg_s, clg_err, clg_code);
        wsum += w;
    }
    clg_acc[lid] = sum;
    clg_acc[L + lid] = wsum;
    barrier(CLK_LOCAL_MEM_FENCE);
    int step = 1;
    while (step < L)
        step <<= 1;
    for (step >>= 1; step > 0; step >>= 1) {
        if (lid < step && lid + step < L) {
            clg_acc[lid] += clg_acc[lid + step];
            clg_acc[L + lid] += clg_acc[L + lid + step];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        clg_out[0] = clg_mean ? clg_acc[0] / clg_acc[L] : clg_acc[0];
        clg_out[1] = clg_acc[L];
    }
}

/* d loss_r / d x_rc = p_c ((1-e) w_y + e W / C) - (1-e) w_y [c == y] - e w_c / C,
 * scaled by the row's incoming gradient; one work-item per input element. */
__kernel void clg_ce_backward_${suffix}(__global clg_t* clg_dx, __global const clg_t* clg_x,
                                        __global const clg_t* clg_lse,
                                        __global const long* clg_target,
                                        __global const clg_t* clg_g, int clg_g_off,
                                        int clg_g_step, __global const clg_t* clg_g_div,
                                        int clg_g_div_on,
                                        __global const clg_t* clg_weight, int clg_has_weight,
                                        __global const clg_t* clg_wsum, long clg_ignore,
                                        clg_t clg_smooth, int clg_n, int clg_c, int clg_s)
{
    /* the loss gradient of row r is clg_g[clg_g_off + r * clg_g_step]: step 0 reads a 'mean'
     * or 'sum' reduction's one value for every row (no expanded copy of it); clg_g_div_on divides
     * it by clg_g_div[1] (the weight sum in clg_ce_reduce's output) */
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
    /* the class weights' sum: read only with smoothing (otherwise clg_wsum may be a stand-in) */
    const clg_t wsum = clg_has_weight && clg_smooth != (clg_t)0 ? clg_wsum[0] : (clg_t)clg_c;
    const clg_t p = exp(clg_x[i] - clg_lse[row]);
    const clg_t keep = (clg_t)1 - clg_smooth;
    clg_t d = p * (keep * wy + clg_smooth * wsum / (clg_t)clg_c) - clg_smooth * wc / (clg_t)clg_c;
    if (c == y)
        d -= keep * wy;
    clg_t g = clg_g[clg_g_off + (long)row * clg_g_step];
    if (clg_g_div_on)
        g /= clg_g_div[1];          /* a fused 'mean': clg_ce_reduce's total row weight */
    clg_dx[i] = g * d;
}
