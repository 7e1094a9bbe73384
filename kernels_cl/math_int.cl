/* Integer helpers of elementwise math ops, written in the compute type clg_t (an integer type).
 * Included as a preamble only into kernels whose compute type is an integer. */

/* b ** e by squaring; negative exponents give PyTorch's integer results (1, +-1 or 0). */
clg_t clg_ipow(clg_t b, clg_t e)
{
    if (e < 0) {
        if (b == 1)
            return 1;
        if (b == -1)
            return (e & 1) ? b : (clg_t)1;
        return 0;
    }
    clg_t r = 1;
    while (e) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return r;
}
