/* Reduction family, one work-item per output (CPU devices with many outputs): the work-item
 * walks its reduced elements in order. Neighbouring work-items hold neighbouring outputs, so
 * where the kept innermost dimension is contiguous (a sum over the batch of a (N, C) tensor)
 * a compiler that vectorizes across work-items loads whole vectors; no local memory, no
 * barriers. The reduced coordinates advance by carrying digits, never by dividing (a vector
 * integer division is scalar code on CPUs). reduce.cl is the many-lanes-per-output variant,
 * for few, long reductions. Both start with the head that runtime/reducegen.py renders: the
 * accumulator type clg_acc_t and the spec's CLG_INIT, CLG_MAP(x, r), CLG_COMBINE(a, b) and
 * CLG_FINAL(a). */
${head}

__kernel void ${name}(${args})
{
    const ${idx} clg_o = get_global_id(0);
    if (clg_o < clg_nout) {
        clg_acc_t clg_acc = CLG_INIT;
        ${idx} clg_rest = clg_o;
        ${idx} clg_c;
${out_offsets}
${out_index}
${red_start}
        for (${idx} clg_r = 0; clg_r < clg_nred; clg_r++) {
${red_offsets}
            clg_acc = CLG_COMBINE(clg_acc, CLG_MAP(${load}, clg_r));
${red_step}
        }
${store}
    }
}
