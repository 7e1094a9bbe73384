/* Reduction family: each output element combines the input elements along the reduced dims.
 * Work-items are a 2-D grid: dimension 0 are the lanes sharing one output (a power of two;
 * 1 when outputs are many and rows short), dimension 1 walks the outputs. Lanes stride over the
 * reduced elements (their coordinates advance by carrying digits: no division per element),
 * then combine through local memory in a tree. The head is explained in reduce_seq.cl. */
${head}

__kernel void ${name}(${args})
{
    const ${idx} clg_lane = get_local_id(0);
    const ${idx} clg_lanes = get_local_size(0);
    const ${idx} clg_slot = get_local_id(1) * clg_lanes;
    const ${idx} clg_o = get_global_id(1);
    const int clg_valid = clg_o < clg_nout;
    clg_acc_t clg_acc = CLG_INIT;
    ${idx} clg_rest = clg_o;
    ${idx} clg_c;
${out_offsets}
${out_index}
    if (clg_valid) {
${red_start}
        for (${idx} clg_r = clg_lane; clg_r < clg_nred; clg_r += clg_lanes) {
${red_offsets}
            clg_acc = CLG_COMBINE(clg_acc, CLG_MAP(${load}, clg_r));
${red_step}
        }
        clg_scratch[clg_slot + clg_lane] = clg_acc;
    }
    for (${idx} clg_half = clg_lanes / 2; clg_half > 0; clg_half /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (clg_valid && clg_lane < clg_half) {
            clg_acc_t clg_other = clg_scratch[clg_slot + clg_lane + clg_half];
            clg_acc = CLG_COMBINE(clg_acc, clg_other);
            clg_scratch[clg_slot + clg_lane] = clg_acc;
        }
    }
    if (clg_valid && clg_lane == 0) {
${store}
    }
}
