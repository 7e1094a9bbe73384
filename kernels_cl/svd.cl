/* Singular value decomposition by one-sided Jacobi (Hestenes) rotations, one work-item per
 * matrix: each work-item owns its matrix's slices of every buffer (no sharing, no barriers, any
 * work-group size). For a tall matrix A (m >= n), plane rotations applied to pairs of columns
 * make all columns mutually orthogonal: A V = U diag(S), the column norms are S, V is the
 * product of the rotations. A pair counts as orthogonal when |a_p . a_q| <= tol |a_p| |a_q|;
 * sweeps stop when one rotates nothing, or after max_sweeps. Singular values come out sorted
 * descending; left vectors of zero singular values, and the extra columns of a full U, are
 * completed to an orthonormal basis by Gram-Schmidt on unit vectors. The matrix is scaled by a
 * power of two first, so huge and tiny entries neither overflow nor underflow. Signs: the
 * largest entry of each column of U is positive (LAPACK fixes none; this one is deterministic
 * and the same on every device). */
${extensions}
typedef ${t} clg_t;

/* column j of a row-major matrix with `ld` columns, row i */
#define CLG_AT(M, ld, i, j) (M)[(long)(i) * (ld) + (j)]

/* Rotate columns p, q of the (rows, ld) matrix M by (c, s): p' = c p - s q, q' = s p + c q. */
void clg_rotate(__global clg_t* M, int rows, int ld, int p, int q, clg_t c, clg_t s)
{
    for (int i = 0; i < rows; ++i) {
        const clg_t mp = CLG_AT(M, ld, i, p), mq = CLG_AT(M, ld, i, q);
        CLG_AT(M, ld, i, p) = c * mp - s * mq;
        CLG_AT(M, ld, i, q) = s * mp + c * mq;
    }
}

void clg_swap_cols(__global clg_t* M, int rows, int ld, int p, int q)
{
    for (int i = 0; i < rows; ++i) {
        const clg_t t = CLG_AT(M, ld, i, p);
        CLG_AT(M, ld, i, p) = CLG_AT(M, ld, i, q);
        CLG_AT(M, ld, i, q) = t;
    }
}

/* Make column j of the (m, ld) matrix U a unit vector orthogonal to its columns 0..j-1 (which
 * are orthonormal): e_c minus its projection, for the first row c whose projection leaves at
 * least half the average squared norm (m - j) / m, then re-orthogonalised once. */
void clg_complete(__global clg_t* U, int m, int ld, int j)
{
    const clg_t want = (clg_t)0.5 * (clg_t)(m - j) / (clg_t)m;
    int c = 0;
    for (int r = 0; r < m; ++r) {
        clg_t rest = (clg_t)1;
        for (int l = 0; l < j; ++l)
            rest -= CLG_AT(U, ld, r, l) * CLG_AT(U, ld, r, l);
        if (rest >= want) {
            c = r;
            break;
        }
    }
    for (int i = 0; i < m; ++i) {
        clg_t v = i == c ? (clg_t)1 : (clg_t)0;
        for (int l = 0; l < j; ++l)
            v -= CLG_AT(U, ld, c, l) * CLG_AT(U, ld, i, l);
        CLG_AT(U, ld, i, j) = v;
    }
    for (int l = 0; l < j; ++l) {
        clg_t d = (clg_t)0;
        for (int i = 0; i < m; ++i)
            d += CLG_AT(U, ld, i, l) * CLG_AT(U, ld, i, j);
        for (int i = 0; i < m; ++i)
            CLG_AT(U, ld, i, j) -= d * CLG_AT(U, ld, i, l);
    }
    clg_t nrm = (clg_t)0;
    for (int i = 0; i < m; ++i)
        nrm += CLG_AT(U, ld, i, j) * CLG_AT(U, ld, i, j);
    nrm = sqrt(nrm);
    for (int i = 0; i < m; ++i)
        CLG_AT(U, ld, i, j) /= nrm;
}

/* a: (batch, m, n) working copy of the matrices, m >= n, overwritten; s: (batch, n) singular
 * values, descending. With want_uv: u (batch, m, uc) left vectors (uc = n, or m for a full U),
 * v (batch, n, n) right vectors as columns; without it u and v are not touched. */
__kernel void svd_jacobi_${sfx}(__global clg_t* a, __global clg_t* s, __global clg_t* u,
                                __global clg_t* v, int m, int n, int uc, int want_uv,
                                int max_sweeps, clg_t tol, int batch)
{
    const int b = get_global_id(0);
    if (b >= batch)
        return;
    __global clg_t* A = a + (long)b * m * n;
    __global clg_t* S = s + (long)b * n;
    __global clg_t* V = v + (want_uv ? (long)b * n * n : 0);
    __global clg_t* U = u + (want_uv ? (long)b * m * uc : 0);
    if (want_uv)
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j)
                CLG_AT(V, n, i, j) = i == j ? (clg_t)1 : (clg_t)0;
    /* scale by a power of two (exact) so the largest |a_ij| is about 1: the squared column
     * norms then neither overflow nor underflow; S is scaled back at the end */
    clg_t big = (clg_t)0;
    for (long i = 0; i < (long)m * n; ++i)
        big = fmax(big, fabs(A[i]));
    const int e = big > (clg_t)0 && isfinite(big) ? ilogb(big) : 0;
    if (e != 0)
        for (long i = 0; i < (long)m * n; ++i)
            A[i] = ldexp(A[i], -e);

    for (int sweep = 0; sweep < max_sweeps; ++sweep) {
        int rotated = 0;
        for (int p = 0; p < n - 1; ++p) {
            for (int q = p + 1; q < n; ++q) {
                clg_t alpha = (clg_t)0, beta = (clg_t)0, gamma = (clg_t)0;
                for (int i = 0; i < m; ++i) {
                    const clg_t ap = CLG_AT(A, n, i, p), aq = CLG_AT(A, n, i, q);
                    alpha += ap * ap;
                    beta += aq * aq;
                    gamma += ap * aq;
                }
                if (fabs(gamma) <= tol * sqrt(alpha) * sqrt(beta))
                    continue;
                /* t: the smaller root of t^2 + 2 zeta t - 1 = 0, which zeroes a_p' . a_q' */
                const clg_t zeta = (beta - alpha) / ((clg_t)2 * gamma);
                const clg_t t = (zeta >= (clg_t)0 ? (clg_t)1 : (clg_t)-1) /
                                (fabs(zeta) + hypot((clg_t)1, zeta));
                if (t == (clg_t)0)
                    continue;
                const clg_t c = (clg_t)1 / sqrt((clg_t)1 + t * t);
                const clg_t sn = c * t;
                clg_rotate(A, m, n, p, q, c, sn);
                if (want_uv)
                    clg_rotate(V, n, n, p, q, c, sn);
                rotated = 1;
            }
        }
        if (!rotated)
            break;
    }

    for (int j = 0; j < n; ++j) {
        clg_t nrm = (clg_t)0;
        for (int i = 0; i < m; ++i)
            nrm += CLG_AT(A, n, i, j) * CLG_AT(A, n, i, j);
        S[j] = sqrt(nrm);
    }
    /* selection sort, descending, moving the columns along */
    for (int j = 0; j < n - 1; ++j) {
        int best = j;
        for (int l = j + 1; l < n; ++l)
            if (S[l] > S[best])
                best = l;
        if (best == j)
            continue;
        const clg_t t = S[j];
        S[j] = S[best];
        S[best] = t;
        if (want_uv) {
            clg_swap_cols(A, m, n, j, best);
            clg_swap_cols(V, n, n, j, best);
        }
    }
    if (!want_uv) {
        for (int j = 0; j < n; ++j)
            S[j] = ldexp(S[j], e);
        return;
    }
    /* U: the normalised columns; a column whose norm is zero (or underflows against the
     * largest) gets a completing unit vector instead, as do the columns past n of a full U */
    const clg_t floor_ = S[0] * tol * tol;
    for (int j = 0; j < uc; ++j) {
        if (j < n && S[j] > floor_ && S[j] > (clg_t)0) {
            for (int i = 0; i < m; ++i)
                CLG_AT(U, uc, i, j) = CLG_AT(A, n, i, j) / S[j];
        } else {
            clg_complete(U, m, uc, j);
        }
    }
    /* the sign convention: each column of U has its largest entry (the first, on ties)
     * positive; the matching column of V flips with it, so U S V^T is unchanged */
    for (int j = 0; j < uc; ++j) {
        int top = 0;
        for (int i = 1; i < m; ++i)
            if (fabs(CLG_AT(U, uc, i, j)) > fabs(CLG_AT(U, uc, top, j)))
                top = i;
        if (CLG_AT(U, uc, top, j) >= (clg_t)0)
            continue;
        for (int i = 0; i < m; ++i)
            CLG_AT(U, uc, i, j) = -CLG_AT(U, uc, i, j);
        if (j < n)
            for (int i = 0; i < n; ++i)
                CLG_AT(V, n, i, j) = -CLG_AT(V, n, i, j);
    }
    for (int j = 0; j < n; ++j)
        S[j] = ldexp(S[j], e);
}
