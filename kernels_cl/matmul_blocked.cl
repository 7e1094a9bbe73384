/* Batched matrix multiply C[b] = A[b] @ B[b] for devices whose local memory is ordinary RAM
 * (CPU OpenCL such as PoCL): each work-item keeps an RM x RN block of C in private registers and
 * streams A's rows and B's columns straight from global memory, with no local-memory staging and
 * no barriers. Same arguments as matmul.cl; operands may be strided, transposed or broadcast. */
${extensions}

#define RM ${rm}
#define RN ${rn}
typedef ${acc_t} clg_acc_t;
#define CLG_LOAD_A(o) ${load_a}
#define CLG_LOAD_B(o) ${load_b}

__kernel void ${name}(__global ${c_t}* C, ${idx} c_off, ${idx} c_rs, ${idx} c_cs,
                      __global const ${a_t}* A, ${idx} a_off, ${idx} a_rs, ${idx} a_cs,
                      __global const ${b_t}* B, ${idx} b_off, ${idx} b_rs, ${idx} b_cs,
                      ${idx} M, ${idx} N, ${idx} K${batch_args})
{
    const ${idx} col0 = (${idx})get_global_id(0) * RN;
    const ${idx} row0 = (${idx})get_global_id(1) * RM;
    ${idx} clg_rest = get_global_id(2);
    ${idx} clg_c;
${batch_index}
    if (row0 >= M || col0 >= N)
        return;
    /* rows and columns past the edge re-read the last valid one; their sums are never stored */
    ${idx} ar[RM];
    ${idx} bc[RN];
    for (int i = 0; i < RM; ++i)
        ar[i] = a_off + min(row0 + i, M - 1) * a_rs;
    for (int j = 0; j < RN; ++j)
        bc[j] = b_off + min(col0 + j, N - 1) * b_cs;
    clg_acc_t acc[RM][RN];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j)
            acc[i][j] = 0;
    for (${idx} k = 0; k < K; ++k) {
        clg_acc_t a[RM];
        clg_acc_t b[RN];
        for (int i = 0; i < RM; ++i)
            a[i] = CLG_LOAD_A(ar[i] + k * a_cs);
        for (int j = 0; j < RN; ++j)
            b[j] = CLG_LOAD_B(k * b_rs + bc[j]);
        for (int i = 0; i < RM; ++i)
            for (int j = 0; j < RN; ++j)
                acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < RM; ++i) {
        if (row0 + i >= M)
            break;
        for (int j = 0; j < RN; ++j) {
            if (col0 + j >= N)
                break;
            const clg_acc_t acc_ij = acc[i][j];
${store}
        }
    }
}
