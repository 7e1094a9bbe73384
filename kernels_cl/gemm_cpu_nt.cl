/* Batched GEMM for CPU devices, dot form: C[b] = A[b] @ B[b] (+ C) (+ epilogue) where A's rows
 * and B's columns are both contiguous over k (A @ W^T, as in a linear layer or a gradient
 * against a transposed operand). Each work-item holds an RM x RN block of C as vector partial
 * sums over k (named variables), reduced across lanes once at the end. k runs over [k0, k1);
 * flags bit 0 adds into C, bits 1, 2 and 3 add the bias, apply relu or the mask, as in
 * gemm_cpu.cl. */
${extensions}

typedef ${acc_t} clg_acc_t;
typedef ${vec_t} clg_vec_t;
#define VW ${vw}
inline clg_acc_t clg_epi(clg_acc_t x, int flags, clg_acc_t bv)
{
    if (flags & 8)      /* ReLU's backward: bv is the ReLU's output, read as the bias is */
        return bv > (clg_acc_t)0 ? x : (clg_acc_t)0;
    if (flags & 2)
        x += bv;
    return (flags & 4) && x < (clg_acc_t)0 ? (clg_acc_t)0 : x;   /* relu keeps NaN */
}

inline clg_acc_t clg_hsum(clg_vec_t v)
{
    return ${hsum};
}

inline void clg_store(__global clg_acc_t* C, ${idx} o, clg_acc_t x, int flags,
                      __global const clg_acc_t* bias, ${idx} bo)
{
    if (flags & 1)
        x += C[o];
    if (flags & 14)
        x = clg_epi(x, flags, bias[bo]);
    C[o] = x;
}

__kernel void ${name}(__global clg_acc_t* C, ${idx} c_off, ${idx} c_rs, ${idx} c_cs,
                      __global const clg_acc_t* A, ${idx} a_off, ${idx} a_rs, ${idx} a_cs,
                      __global const clg_acc_t* B, ${idx} b_off, ${idx} b_rs, ${idx} b_cs,
                      ${idx} M, ${idx} N, ${idx} k0, ${idx} k1, int flags,
                      __global const clg_acc_t* bias, ${idx} bias_off, ${idx} bias_rs,
                      ${idx} bias_cs${batch_args})
{
    const ${idx} col0 = (${idx})get_global_id(${col_dim}) * ${rn};
    const ${idx} row0 = (${idx})get_global_id(${row_dim}) * ${rm};
    ${idx} clg_rest = get_global_id(2);
    ${idx} clg_c;
${batch_index}
    if (row0 >= M || col0 >= N)
        return;
    /* rows and columns past the edge re-read the last valid one; their sums are never stored */
${offsets}
${acc_init}
    ${idx} k = k0;
    for (; k + VW <= k1; k += VW) {
${loads}
${fma}
    }
${reduce}
    for (; k < k1; ++k) {
${tail}
    }
${store}
}
