/* Helpers for nn's device-side random initialisation, included after philox.cl into
 * elementwise kernels (clg_t is the compute type there). */

/* Inverse error function: M. Giles, "Approximating the erfinv function" (GPU Gems 2012)
 * single-precision polynomial, then one Newton step on erf() to reach the compute precision. */
clg_t clg_erfinv(clg_t x)
{
    if (x <= (clg_t)-1) return -INFINITY;
    if (x >= (clg_t)1) return INFINITY;
    float xf = (float)x;
    float w = -log((1.0f - xf) * (1.0f + xf));
    float p;
    if (w < 5.0f) {
        w = w - 2.5f;
        p = 2.81022636e-08f;
        p = 3.43273939e-07f + p * w;
        p = -3.5233877e-06f + p * w;
        p = -4.39150654e-06f + p * w;
        p = 0.00021858087f + p * w;
        p = -0.00125372503f + p * w;
        p = -0.00417768164f + p * w;
        p = 0.246640727f + p * w;
        p = 1.50140941f + p * w;
    } else {
        w = sqrt(w) - 3.0f;
        p = -0.000200214257f;
        p = 0.000100950558f + p * w;
        p = 0.00134934322f + p * w;
        p = -0.00367342844f + p * w;
        p = 0.00573950773f + p * w;
        p = -0.0076224613f + p * w;
        p = 0.00943887047f + p * w;
        p = 1.00167406f + p * w;
        p = 2.83297682f + p * w;
    }
    clg_t r = (clg_t)(p * xf);
    const clg_t deriv = (clg_t)1.1283791670955126 * exp(-r * r);
    if (deriv > (clg_t)0)
        r = r - (erf(r) - x) / deriv;
    return r;
}
