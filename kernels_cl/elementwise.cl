/* Elementwise family: out[i] = CLG_OP(x0, x1, ...) over strided, broadcast operands.
 * One work-item per output element; shapes and strides arrive as kernel arguments, so one
 * program serves every shape of a given (op, dtypes, rank). Python renders the argument list,
 * the index arithmetic (one line per dimension) and the loads and store. */
${extensions}
typedef ${compute} clg_t;
${preamble}

#define CLG_OP(${params}) (${expr})

__kernel void ${name}(${args})
{
    const ${idx} clg_gid = get_global_id(0);
    if (clg_gid >= clg_n)
        return;
    ${idx} clg_rest = clg_gid;
    ${idx} clg_c;
${offsets}
${index}
${loads}
${store}
}
