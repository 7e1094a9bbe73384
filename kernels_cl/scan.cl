/* Scan family: inclusive prefix combine (sum or product) along one dim of any stride. One
 * work-item owns one row and walks it in order (or in reverse when clg_rev is set, which the
 * gradient of cumsum needs). */
${extensions}
typedef ${acc_t} clg_t;

#define CLG_COMBINE(a, b) (${combine})

__kernel void ${name}(${args})
{
    const ${idx} clg_o = get_global_id(0);
    if (clg_o >= clg_nrows)
        return;
    ${idx} clg_rest = clg_o;
    ${idx} clg_c;
    ${idx} clg_o_out = clg_out_off;
    ${idx} clg_o_in = clg_in_off;
${row_index}
    clg_t clg_acc = ${init};
    for (${idx} clg_i = 0; clg_i < clg_n; ++clg_i) {
        const ${idx} clg_r = clg_rev ? clg_n - 1 - clg_i : clg_i;
        clg_acc = CLG_COMBINE(clg_acc, ${load});
${store}
    }
}
