/* Checks whose only output is the device's error flag (CLG_FAULT, runtime/faults.py): the host
 * raises at its next sync. One work-item per element of a contiguous run of clg_n values. */
${extensions}
${fault}
typedef ${ctype} clg_t;

/* an integer divisor of zero (PyTorch raises ZeroDivisionError) */
__kernel void clg_check_nonzero_${suffix}(__global const clg_t* clg_x, long clg_off, long clg_n,
                                          __global int* clg_err, int clg_code)
{
    const long i = get_global_id(0);
    if (i >= clg_n)
        return;
    if (clg_x[clg_off + i] == (clg_t)0)
        CLG_FAULT(clg_err, clg_code, 0, 0, 0);
}

/* a class index outside [0, clg_limit) that is not clg_ignore (nll_loss targets) */
__kernel void clg_check_range_${suffix}(__global const clg_t* clg_x, long clg_off, long clg_n,
                                        long clg_limit, long clg_ignore, __global int* clg_err,
                                        int clg_code)
{
    const long i = get_global_id(0);
    if (i >= clg_n)
        return;
    const long v = (long)clg_x[clg_off + i];
    if ((v < 0 || v >= clg_limit) && v != clg_ignore)
        CLG_FAULT(clg_err, clg_code, 0, v, clg_limit);
}
