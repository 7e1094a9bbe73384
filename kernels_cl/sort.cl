/* Sort family: one compare-exchange step of a bitonic network over rows padded to a power of
 * two. Every element carries its original position, and ties are broken by it, so the network
 * (unstable by itself) yields a stable order. Padding positions (index >= clg_len) sort after
 * everything, whatever their (unwritten) values; NaN counts as greater than any number, as in
 * PyTorch. */
${extensions}
typedef ${val_t} clg_t;

int clg_before(clg_t va, long ia, clg_t vb, long ib, long clg_len, int clg_desc)
{
    if (ia >= clg_len || ib >= clg_len)
        return ia < ib;
    const int a_gt = ${a_gt};
    const int b_gt = ${b_gt};
    if (clg_desc ? a_gt : b_gt)
        return 1;
    if (clg_desc ? b_gt : a_gt)
        return 0;
    return ia < ib;
}

__kernel void ${name}(__global clg_t* clg_v, __global long* clg_i, long clg_pad, long clg_len,
                      long clg_k, long clg_j, int clg_desc, long clg_total)
{
    const long clg_gid = get_global_id(0);
    if (clg_gid >= clg_total)
        return;
    const long clg_p = clg_gid % clg_pad;
    const long clg_partner = clg_p ^ clg_j;
    if (clg_partner <= clg_p)
        return;
    const long clg_a = clg_gid, clg_b = clg_gid - clg_p + clg_partner;
    const long ia = clg_i[clg_a], ib = clg_i[clg_b];
    /* a padding element's value is never written (nor needed): it is not read, and moves as 0 */
    const clg_t va = ia < clg_len ? clg_v[clg_a] : (clg_t)0;
    const clg_t vb = ib < clg_len ? clg_v[clg_b] : (clg_t)0;
    const int up = (clg_p & clg_k) == 0;
    const int swap = up ? clg_before(vb, ib, va, ia, clg_len, clg_desc)
                        : clg_before(va, ia, vb, ib, clg_len, clg_desc);
    if (swap) {
        clg_v[clg_a] = vb; clg_v[clg_b] = va;
        clg_i[clg_a] = ib; clg_i[clg_b] = ia;
    }
}
