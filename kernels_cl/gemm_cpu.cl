/* Batched GEMM for CPU devices, outer-product form: C[b] = A[b] @ B[b] (+ C) (+ epilogue).
 * Each work-item holds RM rows x VW columns of C as RM vector accumulators (named variables,
 * not a private array) and walks k over [k0, k1): one vector load of B's row, one broadcast of
 * each A element, RM vector multiply-adds. Python splits K into k-blocks across launches
 * (flags bit 0: add into C) so the B slab one row-block walks stays in cache; the epilogue is
 * a flag too (bit 1: add the bias, bit 2: relu, bit 3: keep C where a mask operand, passed as
 * the bias, is > 0: ReLU's backward), so one program serves every epilogue. A may
 * have any strides; B's load is a vector load or a gather (snippet from Python). */
${extensions}

typedef ${acc_t} clg_acc_t;
typedef ${vec_t} clg_vec_t;
#define VW ${vw}
#define CLG_LBV(o) ${load_bv}

/* the epilogue, applied once, on the last k-block: bias (flags bit 1), then relu (bit 2); or
 * the mask (bit 3) alone */
inline clg_acc_t clg_epi(clg_acc_t x, int flags, clg_acc_t bv)
{
    if (flags & 8)      /* ReLU's backward: bv is the ReLU's output, read as the bias is */
        return bv > (clg_acc_t)0 ? x : (clg_acc_t)0;
    if (flags & 2)
        x += bv;
    return (flags & 4) && x < (clg_acc_t)0 ? (clg_acc_t)0 : x;   /* relu keeps NaN */
}

/* One row of the block into C: a vector store when it is whole, contiguous and plain;
 * otherwise element by element, adding into C and applying the epilogue as flags ask. */
inline void clg_store_row(__global clg_acc_t* C, ${idx} co, ${idx} c_cs, int ncol, clg_vec_t v,
                          int flags, __global const clg_acc_t* bias, ${idx} bo, ${idx} bias_cs)
{
    if (flags == 0 && ncol == VW && c_cs == 1) {
        ${store_whole}
        return;
    }
    clg_acc_t row[VW];
    ${store_private}
    for (int j = 0; j < ncol; ++j) {
        clg_acc_t x = row[j];
        if (flags & 1)
            x += C[co + j * c_cs];
        if (flags & 14)
            x = clg_epi(x, flags, bias[bo + j * bias_cs]);
        C[co + j * c_cs] = x;
    }
}

__kernel void ${name}(__global clg_acc_t* C, ${idx} c_off, ${idx} c_rs, ${idx} c_cs,
                      __global const clg_acc_t* A, ${idx} a_off, ${idx} a_rs, ${idx} a_cs,
                      __global const clg_acc_t* B, ${idx} b_off, ${idx} b_rs, ${idx} b_cs,
                      ${idx} M, ${idx} N, ${idx} k0, ${idx} k1, int flags,
                      __global const clg_acc_t* bias, ${idx} bias_off, ${idx} bias_rs,
                      ${idx} bias_cs${batch_args})
{
    const ${idx} col0 = (${idx})get_global_id(${col_dim}) * VW;
    const ${idx} row0 = (${idx})get_global_id(${row_dim}) * ${rm};
    ${idx} clg_rest = get_global_id(2);
    ${idx} clg_c;
${batch_index}
    if (row0 >= M || col0 >= N)
        return;
    /* rows past the edge re-read the last valid row; their sums are never stored */
${row_offsets}
${acc_init}
    if (col0 + VW <= N) {
        const ${idx} bo = b_off + col0 * b_cs;
        for (${idx} k = k0; k < k1; ++k) {
            const clg_vec_t b = CLG_LBV(bo + k * b_rs);
${fma}
        }
    } else {
${edge_cols}
        for (${idx} k = k0; k < k1; ++k) {
            const ${idx} kb = k * b_rs;
            const clg_vec_t b = ${edge_load};
${fma}
        }
    }
    const int ncol = (int)min((${idx})VW, N - col0);
${store}
}
