/* Scans that carry an index: cummax / cummin along the last dim of contiguous rows, one
 * work-item per row walking it in order. As in PyTorch, an equal later value takes over the
 * index (>= for max, <= for min) and a NaN wins and is kept until the next NaN. */
${extensions}

#define CLG_WINS(v, best) (${wins})

__kernel void cum${kind}_${sfx}(__global ${t}* clg_out, __global long* clg_idx,
                              __global const ${t}* clg_x, long clg_n, long clg_rows)
{
    const long clg_r = get_global_id(0);
    if (clg_r >= clg_rows)
        return;
    const long clg_base = clg_r * clg_n;
    ${t} clg_best = clg_x[clg_base];
    long clg_at = 0;
    for (long clg_i = 0; clg_i < clg_n; ++clg_i) {
        const ${t} clg_v = clg_x[clg_base + clg_i];
        if (CLG_WINS(clg_v, clg_best)) {
            clg_best = clg_v;
            clg_at = clg_i;
        }
        clg_out[clg_base + clg_i] = clg_best;
        clg_idx[clg_base + clg_i] = clg_at;
    }
}
