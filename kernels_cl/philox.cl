/* Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11): a bijection of a 128-bit counter under a 64-bit key. The same (seed, counter)
 * gives the same bits on every device. Included into elementwise kernels as a preamble. */

uint4 clg_philox(uint4 ctr, uint2 key)
{
    for (int round = 0; round < 10; ++round) {
        const uint lo0 = 0xD2511F53u * ctr.x;
        const uint hi0 = mul_hi(0xD2511F53u, ctr.x);
        const uint lo1 = 0xCD9E8D57u * ctr.z;
        const uint hi1 = mul_hi(0xCD9E8D57u, ctr.z);
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
        key += (uint2)(0x9E3779B9u, 0xBB67AE85u);
    }
    return ctr;
}

/* Four random words for element `index` of a draw at `offset` under `seed`. */
uint4 clg_random_words(ulong seed, ulong offset, ulong index)
{
    const ulong c = offset + index;
    return clg_philox((uint4)((uint)c, (uint)(c >> 32), 0u, 0u),
                      (uint2)((uint)seed, (uint)(seed >> 32)));
}

/* Uniform in [0, 1) from the top 24 bits (float) -- exact, never 1.0f. */
float clg_uniform_f(uint4 w)
{
    return (float)(w.x >> 8) * 5.9604644775390625e-8f;
}

/* Standard normal by Box-Muller from two words; 1 - u keeps log() away from 0. */
float clg_normal_f(uint4 w)
{
    const float u1 = 1.0f - (float)(w.x >> 8) * 5.9604644775390625e-8f;
    const float u2 = (float)(w.y >> 8) * 5.9604644775390625e-8f;
    return sqrt(-2.0f * log(u1)) * cospi(2.0f * u2);
}

ulong clg_random_ulong(uint4 w)
{
    return ((ulong)w.z << 32) | (ulong)w.w;
}
