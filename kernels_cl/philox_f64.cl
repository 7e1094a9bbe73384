/* Float64 uniform and normal draws from Philox words (53 random bits each); needs cl_khr_fp64
 * and is included after philox.cl only for double outputs. */

double clg_uniform_d(uint4 w)
{
    const ulong bits = (((ulong)w.x << 32) | (ulong)w.y) >> 11;
    return (double)bits * 1.1102230246251565e-16;
}

double clg_normal_d(uint4 w)
{
    const ulong b1 = (((ulong)w.x << 32) | (ulong)w.y) >> 11;
    const ulong b2 = (((ulong)w.z << 32) | (ulong)w.w) >> 11;
    const double u1 = 1.0 - (double)b1 * 1.1102230246251565e-16;
    const double u2 = (double)b2 * 1.1102230246251565e-16;
    return sqrt(-2.0 * log(u1)) * cospi(2.0 * u2);
}
