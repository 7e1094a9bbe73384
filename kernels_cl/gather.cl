/* Gather family: each output element reads the source at an offset built from its own
 * coordinates (the direct dims, through `base` strides) plus, for every index tensor, the index
 * found at the same output position times that indexed dim's stride. Indices may be negative
 * (counted from the end); an index out of range is clamped to 0 (nothing is read out of
 * bounds) and reported through the device's error flag clg_err (CLG_FAULT, runtime/faults.py):
 * the host raises at its next sync, with no read per launch. In offset mode the kernel
 * stores the offset itself instead of loading: that is how scatters find their destinations. */
${extensions}

__kernel void ${name}(${args})
{
    const ${idx} clg_gid = get_global_id(0);
    if (clg_gid >= clg_n)
        return;
    ${idx} clg_rest = clg_gid;
    ${idx} clg_c;
    int clg_ok = 1;
${offsets}
${index}
${lookups}
${store}
}
