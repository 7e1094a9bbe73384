/* Fused optimizer update: one work-item per element of a flat parameter arena.
 * The parameter, its gradient and every state buffer (exp_avg, ...) share one element layout,
 * so a single launch updates a whole parameter group, however many tensors it holds.
 * Python renders the argument list, the loads, the update rule (C statements over `p`, `g`,
 * the state variables and the scalar hyperparameters) and the stores. */
${extensions}
typedef ${compute} clg_t;

${helpers}

__kernel void ${name}(${args})
{
    const ${idx} clg_gid = get_global_id(0);
    if (clg_gid >= clg_n)
        return;
    const ${idx} clg_i = clg_off + clg_gid;
${loads}
${update}
${stores}
}
