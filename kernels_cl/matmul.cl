/* Batched matrix multiply C[b] = A[b] @ B[b] over strided (possibly transposed or broadcast)
 * operands, with square TS x TS tiles staged in local memory. TS comes from what the device and
 * the built kernel allow. A later issue tunes this; keep the signature. */
${extensions}

#define TS ${ts}
typedef ${acc_t} clg_acc_t;

__kernel void ${name}(__global ${c_t}* C, ${idx} c_off, ${idx} c_rs, ${idx} c_cs,
                      __global const ${a_t}* A, ${idx} a_off, ${idx} a_rs, ${idx} a_cs,
                      __global const ${b_t}* B, ${idx} b_off, ${idx} b_rs, ${idx} b_cs,
                      ${idx} M, ${idx} N, ${idx} K${batch_args})
{
    __local clg_acc_t clg_as[TS][TS + 1];
    __local clg_acc_t clg_bs[TS][TS + 1];
    const int lx = get_local_id(0);
    const int ly = get_local_id(1);
    const ${idx} col = get_global_id(0);
    const ${idx} row = get_global_id(1);
    ${idx} clg_rest = get_global_id(2);
    ${idx} clg_c;
${batch_index}
    clg_acc_t acc = 0;
    for (${idx} t = 0; t < K; t += TS) {
        clg_as[ly][lx] = (row < M && t + lx < K) ? (clg_acc_t)${load_a} : (clg_acc_t)0;
        clg_bs[ly][lx] = (t + ly < K && col < N) ? (clg_acc_t)${load_b} : (clg_acc_t)0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TS; ++k)
            acc += clg_as[ly][k] * clg_bs[k][lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < M && col < N) {
${store}
    }
}
