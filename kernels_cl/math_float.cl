/* Floating-point helpers of elementwise math ops, written in the compute type clg_t (float or
 * double). Included as a preamble only into kernels whose compute type is floating. */

/* max/min that propagate a NaN from either side (PyTorch's maximum, minimum and clamp). */
clg_t clg_maxn(clg_t a, clg_t b)
{
    return (isnan(a) || a > b) ? a : b;
}

clg_t clg_minn(clg_t a, clg_t b)
{
    return (isnan(a) || a < b) ? a : b;
}

/* Python's floor division: computed through fmod so that a / b rounding up to an integer does
 * not move the quotient to the next integer (numpy and PyTorch do the same). */
clg_t clg_floordiv(clg_t a, clg_t b)
{
    if (b == (clg_t)0)
        return a / b;
    const clg_t mod = fmod(a, b);
    clg_t div = (a - mod) / b;
    if (mod != (clg_t)0 && ((b < (clg_t)0) != (mod < (clg_t)0)))
        div -= (clg_t)1;
    if (div == (clg_t)0)
        return copysign((clg_t)0, a / b);
    clg_t fl = floor(div);
    if (div - fl > (clg_t)0.5)
        fl += (clg_t)1;
    return fl;
}

/* Python's modulo: the result takes the sign of the divisor. */
clg_t clg_remainder(clg_t a, clg_t b)
{
    clg_t r = fmod(a, b);
    if (r == (clg_t)0)
        return copysign((clg_t)0, b);
    if ((r < (clg_t)0) != (b < (clg_t)0))
        r += b;
    return r;
}

/* log(1 + exp(beta x)) / beta, linear above the threshold where it equals x in precision. */
clg_t clg_softplus(clg_t x, clg_t beta, clg_t threshold)
{
    return x * beta > threshold ? x : log1p(exp(x * beta)) / beta;
}

/* log(sigmoid(x)) without overflow: min(x, 0) - log(1 + exp(-|x|)). */
clg_t clg_logsigmoid(clg_t x)
{
    return fmin(x, (clg_t)0) - log1p(exp(-fabs(x)));
}

/* PyTorch's round(decimals): scale by 10^|d|, round half to even, scale back. */
clg_t clg_round_dec(clg_t x, clg_t scale, int negative)
{
    return negative ? rint(x / scale) * scale : rint(x * scale) / scale;
}

/* tanh that reaches exactly +-1 where the rounded result is 1 (some libraries stop one ulp
 * short of it for large inputs). */
clg_t clg_tanh(clg_t x)
{
    const clg_t sat = sizeof(clg_t) == 4 ? (clg_t)9.1f : (clg_t)19.5f;
    return fabs(x) > sat ? copysign((clg_t)1, x) : tanh(x);
}

/* d/dx of x * sigmoid(x) (SiLU). */
clg_t clg_silu_grad(clg_t x)
{
    const clg_t s = (clg_t)1 / ((clg_t)1 + exp(-x));
    return s * ((clg_t)1 + x * ((clg_t)1 - s));
}

/* d/dx of x * Phi(x) (exact GELU): Phi(x) + x phi(x). */
clg_t clg_gelu_grad(clg_t x)
{
    const clg_t cdf = (clg_t)0.5 * ((clg_t)1 + erf(x * (clg_t)0.7071067811865476));
    return cdf + x * exp((clg_t)-0.5 * x * x) * (clg_t)0.3989422804014327;
}

/* torch.lerp: two formulas, so that weight 0 gives exactly `a` and weight 1 exactly `b`; the
 * branch tests |w| as PyTorch does. The optimizer kernels (optim.cl) include this file too. */
clg_t clg_lerp(clg_t a, clg_t b, clg_t w)
{
    return fabs(w) < (clg_t)0.5 ? a + w * (b - a) : b - (b - a) * ((clg_t)1 - w);
}
