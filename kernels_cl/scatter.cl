/* Scatter family: destinations arrive sorted (a stable sort of their offsets, with the
 * permutation back to the source positions), so every run of equal destinations is one
 * contiguous stretch. The work-item at the last element of a run finds the run's start by
 * binary search and folds the run's values in source order: deterministic, no atomics (OpenCL
 * 1.2 has no float atomics), duplicates either combined or "last one wins". A negative
 * destination is an index the offsets kernel found out of range (it set the device's error
 * flag): it is written nowhere. */
${extensions}
typedef ${compute} clg_t;

#define CLG_COMBINE(a, b) (${combine})

__kernel void ${name}(__global ${dst_t}* clg_dst, __global const long* clg_keys,
                      __global const long* clg_perm, __global const ${val_t}* clg_vals,
                      long clg_n)
{
    const long clg_q = get_global_id(0);
    if (clg_q >= clg_n)
        return;
    const long clg_key = clg_keys[clg_q];
    if (clg_key < 0 || (clg_q + 1 < clg_n && clg_keys[clg_q + 1] == clg_key))
        return;
    long clg_lo = 0, clg_hi = clg_q;
    while (clg_lo < clg_hi) {
        const long clg_mid = (clg_lo + clg_hi) / 2;
        if (clg_keys[clg_mid] < clg_key)
            clg_lo = clg_mid + 1;
        else
            clg_hi = clg_mid;
    }
    clg_t clg_acc = ${init};
    for (long clg_j = ${start}; clg_j <= clg_q; ++clg_j) {
        const clg_t clg_v = ${load_val};
        clg_acc = CLG_COMBINE(clg_acc, clg_v);
    }
${store}
}
