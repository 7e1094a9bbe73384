/* Fused elementwise chain: several elementwise ops computed per element in one pass.
 * Python (clgrad/runtime/fusion.py) writes one CLG_OPk macro per op of the chain (its record's
 * own expression), one temporary per op holding its value rounded to the op's storage type,
 * and a store for every result somebody still needs. Each temporary is what the unfused
 * kernel would have stored, so fused and unfused results agree bit for bit. Outputs are fresh
 * contiguous buffers of the chain's shape: element clg_gid. */
${extensions}
typedef ${compute} clg_t;
${preamble}

${ops}

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
${body}
${stores}
}
