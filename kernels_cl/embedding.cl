/* Embedding lookup and its deterministic backward (no float atomics): the backward gives each
 * destination row to one work-item, which scans the indices in order and sums the matching
 * gradient rows, so the summation order never changes between runs. */
${extensions}
${fault}
typedef ${real} clg_t;

__kernel void clg_embedding_forward_${suffix}(__global clg_t* clg_out,
                                              __global const clg_t* clg_w, long clg_w_off,
                                              long clg_w_st0, long clg_w_st1,
                                              __global const long* clg_idx, long clg_n,
                                              long clg_d, long clg_v, __global int* clg_err,
                                              int clg_code)
{
    const long i = get_global_id(0);
    if (i >= clg_n * clg_d)
        return;
    const long row = i / clg_d;
    const long col = i - row * clg_d;
    const long v = clg_idx[row];
    /* an out-of-range index reads nothing: it sets the error flag (the host raises at its next
     * sync) and the row comes out zero, as its gradient goes nowhere, so a step that met one
     * leaves no NaN behind in the model */
    if (v < 0 || v >= clg_v) {
        if (col == 0)
            CLG_FAULT(clg_err, clg_code, 0, v, clg_v);
        clg_out[i] = 0;
        return;
    }
    clg_out[i] = clg_w[clg_w_off + v * clg_w_st0 + col * clg_w_st1];
}

__kernel void clg_embedding_backward_${suffix}(__global clg_t* clg_dw,
                                               __global const clg_t* clg_g,
                                               __global const long* clg_idx, long clg_n,
                                               long clg_d, long clg_v, long clg_padding)
{
    const long v = get_global_id(0);
    if (v >= clg_v)
        return;
    __global clg_t* dst = clg_dw + v * clg_d;
    for (long c = 0; c < clg_d; ++c)
        dst[c] = 0;
    if (v == clg_padding)
        return;
    for (long i = 0; i < clg_n; ++i) {
        if (clg_idx[i] != v)
            continue;
        __global const clg_t* src = clg_g + i * clg_d;
        for (long c = 0; c < clg_d; ++c)
            dst[c] += src[c];
    }
}
