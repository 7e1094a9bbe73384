/* Stream compaction: the positions of the nonzero bytes of a contiguous mask, in order.
 * Three steps over blocks of clg_block elements: count each block, scan the counts (one
 * work-item; there are only a few thousand blocks), then each block writes its positions from
 * its scanned start. The total lands in clg_starts[clg_nblocks], the one value read back. */

__kernel void compact_count(__global const uchar* clg_mask, long clg_n, long clg_block,
                            __global long* clg_counts)
{
    const long b = get_global_id(0);
    const long lo = b * clg_block;
    if (lo >= clg_n)
        return;
    const long hi = min(lo + clg_block, clg_n);
    long c = 0;
    for (long i = lo; i < hi; ++i)
        c += clg_mask[i] != 0;
    clg_counts[b] = c;
}

__kernel void compact_scan(__global const long* clg_counts, long clg_nblocks,
                           __global long* clg_starts)
{
    if (get_global_id(0) != 0)
        return;
    long acc = 0;
    for (long b = 0; b < clg_nblocks; ++b) {
        clg_starts[b] = acc;
        acc += clg_counts[b];
    }
    clg_starts[clg_nblocks] = acc;
}

__kernel void compact_write(__global const uchar* clg_mask, long clg_n, long clg_block,
                            __global const long* clg_starts, __global long* clg_out)
{
    const long b = get_global_id(0);
    const long lo = b * clg_block;
    if (lo >= clg_n)
        return;
    const long hi = min(lo + clg_block, clg_n);
    long o = clg_starts[b];
    for (long i = lo; i < hi; ++i)
        if (clg_mask[i] != 0)
            clg_out[o++] = i;
}
