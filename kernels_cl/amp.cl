/* Mixed precision: GradScaler's device side. One launch per run of gradients unscales them in
 * place and raises a float flag on any inf or NaN (several work-items may write the same 1.0f,
 * which is benign); the scale update reads that flag on the device, so neither step waits for
 * the host. Python renders the gradient's load and store (float16/bfloat16/float32/float64). */
${extensions}

__kernel void ${name}(__global ${g_t}* clg_g, long clg_off, long clg_n,
                      __global float* clg_found, __global const float* clg_scale)
{
    const long clg_i = clg_off + get_global_id(0);
    if ((long)get_global_id(0) >= clg_n)
        return;
    const ${acc_t} clg_v = ${load};
    if (!isfinite(clg_v))
        clg_found[0] = 1.0f;
    const ${acc_t} clg_inv = (${acc_t})1 / (${acc_t})clg_scale[0];
${store}
}

/* PyTorch's scale update: back off and restart the count after a step with an inf/NaN, grow
 * (while the grown scale stays finite) after `interval` clean steps in a row. */
__kernel void amp_update_scale(__global float* clg_scale, __global int* clg_tracker,
                               __global const float* clg_found, float clg_growth,
                               float clg_backoff, int clg_interval)
{
    if (get_global_id(0) != 0)
        return;
    if (clg_found[0] != 0.0f) {
        clg_scale[0] *= clg_backoff;
        clg_tracker[0] = 0;
        return;
    }
    const int clg_ok = clg_tracker[0] + 1;
    if (clg_ok == clg_interval) {
        const float clg_grown = clg_scale[0] * clg_growth;
        if (isfinite(clg_grown))
            clg_scale[0] = clg_grown;
        clg_tracker[0] = 0;
    } else {
        clg_tracker[0] = clg_ok;
    }
}
