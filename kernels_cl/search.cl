/* Search family: binary searches in sorted rows, one work-item per query.
 * searchsorted: the insertion position of each value in its row of boundaries (left: the first
 * boundary >= value; right: the first boundary > value). multinomial_draw: inverse-CDF sampling,
 * a Philox uniform scaled by the row's total and searched in the row's cumulative sums; a draw
 * never lands on a zero-probability category (equal neighbouring sums are stepped over). */
${extensions}
${philox}

__kernel void searchsorted_${sfx}(__global long* clg_out, __global const ${t}* clg_seq,
                                  long clg_n, long clg_seq_row, __global const ${t}* clg_val,
                                  long clg_per_row, long clg_total, int clg_right)
{
    const long clg_q = get_global_id(0);
    if (clg_q >= clg_total)
        return;
    __global const ${t}* clg_s = clg_seq + (clg_q / clg_per_row) * clg_seq_row;
    const ${t} clg_v = clg_val[clg_q];
    long clg_lo = 0, clg_hi = clg_n;
    while (clg_lo < clg_hi) {
        const long clg_mid = clg_lo + (clg_hi - clg_lo) / 2;
        const ${t} clg_m = clg_s[clg_mid];
        if (clg_right ? !(clg_v < clg_m) : (clg_m < clg_v))
            clg_lo = clg_mid + 1;
        else
            clg_hi = clg_mid;
    }
    clg_out[clg_q] = clg_lo;
}

__kernel void multinomial_draw_${sfx}(__global long* clg_out, __global const ${t}* clg_cdf,
                                      long clg_n, long clg_k, long clg_total, ulong clg_seed,
                                      ulong clg_offset)
{
    const long clg_q = get_global_id(0);
    if (clg_q >= clg_total)
        return;
    __global const ${t}* clg_c = clg_cdf + (clg_q / clg_k) * clg_n;
    const ${t} clg_u = ${uniform}(clg_random_words(clg_seed, clg_offset, (ulong)clg_q)) *
                       clg_c[clg_n - 1];
    long clg_lo = 0, clg_hi = clg_n;
    while (clg_lo < clg_hi) {
        const long clg_mid = clg_lo + (clg_hi - clg_lo) / 2;
        if (!(clg_u < clg_c[clg_mid]))
            clg_lo = clg_mid + 1;
        else
            clg_hi = clg_mid;
    }
    if (clg_lo >= clg_n) {
        clg_lo = clg_n - 1;
        while (clg_lo > 0 && clg_c[clg_lo] == clg_c[clg_lo - 1])
            --clg_lo;
    }
    clg_out[clg_q] = clg_lo;
}
