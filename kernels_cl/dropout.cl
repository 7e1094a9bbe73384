/* Dropout with the mask recomputed from Philox counters instead of stored: element i keeps
 * its value (times 1 / (1 - p)) when the uniform draw at counter offset + i / group is >= p.
 * group > 1 shares one draw across a channel's elements (Dropout2d). The backward runs the same
 * kernel on the incoming gradient with the same seed and offset. */
${extensions}
typedef ${real} clg_t;
${philox}

__kernel void clg_dropout_${suffix}(__global clg_t* clg_out, __global const clg_t* clg_x,
                                    ulong clg_seed, ulong clg_offset, float clg_p,
                                    clg_t clg_scale, long clg_group, long clg_n)
{
    const long i = get_global_id(0);
    if (i >= clg_n)
        return;
    const float u = clg_uniform_f(clg_random_words(clg_seed, clg_offset, (ulong)(i / clg_group)));
    clg_out[i] = u >= clg_p ? clg_x[i] * clg_scale : (clg_t)0;
}
