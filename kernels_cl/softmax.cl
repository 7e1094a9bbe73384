/* Softmax family: each row (the elements along one dim, any stride) is normalised in one pass
 * over its max, one over its sum of exponentials and one writing CLG_OUT. Work-items form a 2-D
 * grid like the reduce family: dimension 0 are the lanes sharing one row (a power of two; 1 when
 * rows are many and short, so one work-item owns a row), dimension 1 walks the rows. Lanes
 * combine their partial max and sum through local memory. */
${extensions}
typedef ${acc_t} clg_t;

#define CLG_OUT(x, m, s) (${out_expr})

__kernel void ${name}(${args})
{
    const ${idx} clg_lane = get_local_id(0);
    const ${idx} clg_lanes = get_local_size(0);
    const ${idx} clg_slot = get_local_id(1) * clg_lanes;
    const ${idx} clg_o = get_global_id(1);
    const int clg_valid = clg_o < clg_nrows;
    ${idx} clg_rest = clg_o;
    ${idx} clg_c;
    ${idx} clg_o_out = clg_out_off;
    ${idx} clg_o_in = clg_in_off;
${row_index}
    clg_t clg_m = -INFINITY;
    if (clg_valid) {
        for (${idx} clg_r = clg_lane; clg_r < clg_n; clg_r += clg_lanes) {
            const clg_t clg_x = ${load};
            clg_m = (isnan(clg_x) || clg_x > clg_m) ? clg_x : clg_m;
        }
        clg_scratch[clg_slot + clg_lane] = clg_m;
    }
    for (${idx} clg_half = clg_lanes / 2; clg_half > 0; clg_half /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (clg_valid && clg_lane < clg_half) {
            const clg_t clg_other = clg_scratch[clg_slot + clg_lane + clg_half];
            clg_m = (isnan(clg_other) || clg_other > clg_m) ? clg_other : clg_m;
            clg_scratch[clg_slot + clg_lane] = clg_m;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (clg_valid)
        clg_m = clg_scratch[clg_slot];
    barrier(CLK_LOCAL_MEM_FENCE);
    clg_t clg_s = 0;
    if (clg_valid) {
        for (${idx} clg_r = clg_lane; clg_r < clg_n; clg_r += clg_lanes)
            clg_s += exp(${load} - clg_m);
        clg_scratch[clg_slot + clg_lane] = clg_s;
    }
    for (${idx} clg_half = clg_lanes / 2; clg_half > 0; clg_half /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (clg_valid && clg_lane < clg_half) {
            clg_s += clg_scratch[clg_slot + clg_lane + clg_half];
            clg_scratch[clg_slot + clg_lane] = clg_s;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (clg_valid) {
        clg_s = clg_scratch[clg_slot];
        for (${idx} clg_r = clg_lane; clg_r < clg_n; clg_r += clg_lanes) {
            const clg_t clg_x = ${load};
${store}
        }
    }
}
