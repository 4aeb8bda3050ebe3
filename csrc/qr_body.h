/*
 * qr_body.h -- the orthogonal initializer's QR: a blocked Householder QR in float64 whose every
 * operation and its order are fixed, so the bits of Q never depend on the thread count, the
 * instruction-set path or the machine (LAPACK's QR promises none of that).
 *
 * Included by init_kernels.c (compiled once per ISA).  The algorithm is LAPACK's dgeqrf + dorgqr
 * (Householder reflectors as dlarfg makes them, blocks of QR_NB of them applied through their
 * compact-WY form I - V T V^T, T as dlarft makes it), written in plain C: multiplications and
 * additions separately rounded (the build has -ffp-contract=off), each sum in one fixed order.
 * The compiler vectorizes only across independent outputs (or the eight fixed lanes of
 * qr_dot), which leaves every result's operations unchanged.  The matrix is held by columns
 * (column j of the m x n input at at + j*m), so every reflector and column is contiguous.
 */
#define QR_NB 32          /* reflectors per block */
#define QR_JB 4           /* columns per step of the block products */
#define QR_TASK_COLS 16   /* columns per parallel task (a multiple of QR_JB) */

/* sum a[i] b[i], i < n: eight lanes (lane l takes i = l mod 8, in order), then a fixed tree. */
static double qr_dot(const double *a, const double *b, int64_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i + l < n; l++) acc[l] += a[i + l] * b[i + l];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* y -= tau (y . v) v with v = (1, x[1..n)), on y[0..n) (dlarf on one column). */
static void qr_reflect(const double *x, double tau, double *y, int64_t n)
{
    const double w = tau * (y[0] + qr_dot(x + 1, y + 1, n - 1));
    y[0] -= w;
    for (int64_t i = 1; i < n; i++) y[i] -= w * x[i];
}

/* The two block products, on GCC and Clang with the lanes spelled out (vector extensions:
 * left to itself, GCC vectorizes the update over r, two products at a time subtracted one by
 * one), elsewhere as plain loops; every output's operations are the same in both. */
#if defined(__GNUC__)
#if defined(__AVX__)
#define QR_VW 4
#else
#define QR_VW 2
#endif
typedef double qr_v __attribute__((vector_size(QR_VW * 8)));
#define QR_LOAD(x, p) memcpy(&(x), (p), sizeof(qr_v))
#define QR_STORE(p, x) memcpy((p), &(x), sizeof(qr_v))
#define QR_RB (2 * QR_VW)      /* reflectors per pass of V^T C */
#define QR_CHUNK (4 * QR_VW)   /* rows per step of C -= V U */

/* w[j][rb + r] = sum_i vr[i*QR_RB + r] c[j][i] for r < QR_RB, j < QR_JB, in the order of i */
static inline void qr_vtc(const double *vr, double *const *c, int64_t len,
                          double w[QR_JB][QR_NB], int rb)
{
    const qr_v z = {0};
    qr_v a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z, v0, v1;
    for (int64_t i = 0; i < len; i++, vr += QR_RB) {
        QR_LOAD(v0, vr);
        QR_LOAD(v1, vr + QR_VW);
        a00 += v0 * c[0][i], a01 += v1 * c[0][i];
        a10 += v0 * c[1][i], a11 += v1 * c[1][i];
        a20 += v0 * c[2][i], a21 += v1 * c[2][i];
        a30 += v0 * c[3][i], a31 += v1 * c[3][i];
    }
    QR_STORE(w[0] + rb, a00), QR_STORE(w[0] + rb + QR_VW, a01);
    QR_STORE(w[1] + rb, a10), QR_STORE(w[1] + rb + QR_VW, a11);
    QR_STORE(w[2] + rb, a20), QR_STORE(w[2] + rb + QR_VW, a21);
    QR_STORE(w[3] + rb, a30), QR_STORE(w[3] + rb + QR_VW, a31);
}

/* c[0..QR_CHUNK) -= sum_r v[r*ld + (0..QR_CHUNK)] u[r], and d likewise with t, term by term in
 * the order of r (d may be c, with t = u).  The terms past a block's b reflectors are 0 * 0,
 * which change nothing, not even a zero's sign. */
static inline void qr_sub_vu2(double *c, double *d, const double *v, int64_t ld, const double *u,
                              const double *t)
{
    qr_v a[4], e[4], x;
    for (int k = 0; k < 4; k++) QR_LOAD(a[k], c + k * QR_VW), QR_LOAD(e[k], d + k * QR_VW);
    for (int r = 0; r < QR_NB; r++, v += ld)
        for (int k = 0; k < 4; k++) {
            QR_LOAD(x, v + k * QR_VW);
            a[k] -= x * u[r];
            e[k] -= x * t[r];
        }
    for (int k = 0; k < 4; k++) QR_STORE(c + k * QR_VW, a[k]), QR_STORE(d + k * QR_VW, e[k]);
}
#else
#define QR_RB 8
#define QR_CHUNK 8

static inline void qr_vtc(const double *vr, double *const *c, int64_t len,
                          double w[QR_JB][QR_NB], int rb)
{
    double acc[QR_JB][QR_RB] = {{0}};
    for (int64_t i = 0; i < len; i++, vr += QR_RB)
        for (int j = 0; j < QR_JB; j++)
            for (int r = 0; r < QR_RB; r++) acc[j][r] += vr[r] * c[j][i];
    for (int j = 0; j < QR_JB; j++)
        for (int r = 0; r < QR_RB; r++) w[j][rb + r] = acc[j][r];
}

static inline void qr_sub_vu2(double *c, double *d, const double *v, int64_t ld, const double *u,
                              const double *t)
{
    double a[QR_CHUNK], e[QR_CHUNK];
    for (int k = 0; k < QR_CHUNK; k++) a[k] = c[k], e[k] = d[k];
    for (int r = 0; r < QR_NB; r++, v += ld)
        for (int k = 0; k < QR_CHUNK; k++) a[k] -= v[k] * u[r], e[k] -= v[k] * t[r];
    for (int k = 0; k < QR_CHUNK; k++) c[k] = a[k], d[k] = e[k];
}
#endif

/* One block of reflectors (those of columns k0 .. k0+b-1, rows k0 .. m-1) in the two layouts
 * the block products read, zero above each reflector's unit diagonal and beyond b. */
typedef struct {
    double *at;               /* the matrix by columns; the block products update its columns */
    int64_t m, k0, len;       /* len = m - k0 rows */
    int b, trans;             /* trans: apply I - V T^T V^T (Q^T, factorizing), else I - V T V^T */
    double *vr;               /* by panels of QR_RB reflectors, each len x QR_RB by rows */
    double *vc;               /* QR_NB x len, by reflectors */
    double t[QR_NB * QR_NB];  /* T, upper triangular: t[s*QR_NB + r] */
    int64_t j0, nj;           /* the columns updated */
} qr_block;

static void qr_block_load(qr_block *q, const double *tau)
{
    const int64_t len = q->len;
    memset(q->vr, 0, (size_t)len * QR_NB * sizeof(double));
    memset(q->vc, 0, (size_t)len * QR_NB * sizeof(double));
    for (int r = 0; r < q->b; r++) {
        const double *col = q->at + (q->k0 + r) * q->m + q->k0;   /* column k0+r from row k0 */
        double *vcr = q->vc + (int64_t)r * len;
        vcr[r] = 1.0;
        for (int64_t i = r + 1; i < len; i++) vcr[i] = col[i];
        double *vrr = q->vr + (int64_t)(r / QR_RB) * len * QR_RB + r % QR_RB;
        for (int64_t i = r; i < len; i++) vrr[i * QR_RB] = vcr[i];
    }
    /* dlarft, forward and columnwise: T[r][i] = -tau_i sum_s T[r][s] (v_s . v_i), s in [r, i) */
    memset(q->t, 0, sizeof q->t);
    for (int i = 0; i < q->b; i++) {
        double z[QR_NB];
        const double *vi = q->vc + (int64_t)i * len;
        for (int s = 0; s < i; s++)
            z[s] = -tau[i] * qr_dot(q->vc + (int64_t)s * len + i, vi + i, len - i);
        for (int r = 0; r < i; r++) {
            double acc = 0.0;
            for (int s = r; s < i; s++) acc += q->t[r * QR_NB + s] * z[s];
            q->t[r * QR_NB + i] = acc;
        }
        q->t[i * QR_NB + i] = tau[i];
    }
}

/* Columns c[0..nc) (nc <= QR_JB, each from row k0, len rows): c -= V op(T) V^T c. */
static void qr_block_apply_cols(const qr_block *q, double *const *c, int nc)
{
    const int64_t len = q->len;
    const int b = q->b;
    double w[QR_JB][QR_NB], u[QR_JB][QR_NB] = {{0}};
    /* w = V^T c: each w[j][r] summed over the rows in order */
    double *cc[QR_JB];
    for (int j = 0; j < QR_JB; j++) cc[j] = c[j < nc ? j : 0];   /* past nc: discarded */
    for (int rb = 0; rb < b; rb += QR_RB) qr_vtc(q->vr + rb * len, cc, len, w, rb);
    /* u = T^T w (factorizing) or T w (forming Q), each in a fixed order */
    for (int j = 0; j < nc; j++)
        for (int r = 0; r < b; r++) {
            double acc = 0.0;
            if (q->trans)
                for (int s = 0; s <= r; s++) acc += q->t[s * QR_NB + r] * w[j][s];
            else
                for (int s = r; s < b; s++) acc += q->t[r * QR_NB + s] * w[j][s];
            u[j][r] = acc;
        }
    /* c -= V u: each c[j][i] loses its terms in the order of r */
    int64_t i = 0;
    for (; i + QR_CHUNK <= len; i += QR_CHUNK) {
        int j = 0;
        for (; j + 2 <= nc; j += 2)
            qr_sub_vu2(c[j] + i, c[j + 1] + i, q->vc + i, len, u[j], u[j + 1]);
        if (j < nc) qr_sub_vu2(c[j] + i, c[j] + i, q->vc + i, len, u[j], u[j]);
    }
    for (; i < len; i++)
        for (int j = 0; j < nc; j++) {
            double acc = c[j][i];
            for (int r = 0; r < b; r++) acc -= q->vc[(int64_t)r * len + i] * u[j][r];
            c[j][i] = acc;
        }
}

static void qr_block_task(void *ctx, int64_t task)
{
    const qr_block *q = (const qr_block *)ctx;
    const int64_t j1 = q->j0 + q->nj;
    for (int64_t j = q->j0 + task * QR_TASK_COLS; j < j1 && j < q->j0 + (task + 1) * QR_TASK_COLS;
         j += QR_JB) {
        double *c[QR_JB];
        int nc = 0;
        for (; nc < QR_JB && j + nc < j1; nc++) c[nc] = q->at + (j + nc) * q->m + q->k0;
        qr_block_apply_cols(q, c, nc);
    }
}

/* Apply the block of reflectors of columns k0 .. k0+b-1 (trans: its Q^T) to the columns right
 * of it, split among the threads. */
static void qr_block_update(qr_block *q, int64_t k0, int b, int64_t n, int trans,
                            const double *tau, int n_threads)
{
    q->k0 = k0;
    q->len = q->m - k0;
    q->b = b;
    q->trans = trans;
    qr_block_load(q, tau + k0);
    q->j0 = k0 + b;
    q->nj = n - k0 - b;
    const int64_t tasks = (q->nj + QR_TASK_COLS - 1) / QR_TASK_COLS;
    /* threads pay off from about 2^19 multiply-adds (as for the other kernels' elements) */
    if (q->len * q->nj * b < FB_PAR_MIN_ELEMS) n_threads = 1;
    fb_parallel_for(tasks, n_threads, qr_block_task, q);
}

/* dst (cols x rows) = src (rows x cols)^T, by tiles; row i of src times sign[i] unless NULL */
static void qr_transpose(const double *src, int64_t rows, int64_t cols, double *dst,
                         const double *sign)
{
    for (int64_t i0 = 0; i0 < rows; i0 += 64)
        for (int64_t j0 = 0; j0 < cols; j0 += 64)
            for (int64_t i = i0; i < i0 + 64 && i < rows; i++) {
                const double s = sign ? sign[i] : 1.0;
                for (int64_t j = j0; j < j0 + 64 && j < cols; j++)
                    dst[j * rows + i] = src[i * cols + j] * s;
            }
}

/* Q (m x n, m >= n >= 1, by rows, overwriting a) of the QR of a, its column k multiplied by the
 * sign of R's diagonal entry k (+1 for 0): unique for a of full rank. */
static fb_status qr_orthogonal(double *a, int64_t m, int64_t n, int n_threads)
{
    if (m < n || n < 1) return FB_EINVAL;
    if ((uint64_t)m > (uint64_t)PTRDIFF_MAX / sizeof(double) / (uint64_t)(n + 2 * QR_NB + 2))
        return FB_ENOMEM;
    double *at = (double *)malloc((size_t)m * (size_t)n * sizeof(double));
    const size_t nv = n > QR_NB ? (size_t)m * QR_NB : 1;   /* one block of columns: no V copies */
    double *vr = (double *)malloc(nv * sizeof(double));
    double *vc = (double *)malloc(nv * sizeof(double));
    double *tau = (double *)malloc((size_t)n * sizeof(double));
    double *sgn = (double *)malloc((size_t)n * sizeof(double));
    qr_block *q = (qr_block *)malloc(sizeof *q);
    if (!at || !vr || !vc || !tau || !sgn || !q) {
        free(at), free(vr), free(vc), free(tau), free(sgn), free(q);
        return FB_ENOMEM;
    }
    qr_transpose(a, m, n, at, NULL);
    q->at = at;
    q->m = m;
    q->vr = vr;
    q->vc = vc;
    /* dgeqrf: factor each block of columns (dgeqr2), then update the columns to its right */
    for (int64_t k0 = 0; k0 < n; k0 += QR_NB) {
        const int b = (int)(n - k0 < QR_NB ? n - k0 : QR_NB);
        for (int64_t k = k0; k < k0 + b; k++) {
            double *x = at + k * m + k;
            const int64_t len = m - k;
            const double alpha = x[0], s = qr_dot(x + 1, x + 1, len - 1);
            double beta = alpha, t = 0.0;
            if (s != 0.0) {                            /* dlarfg; else H = I */
                const double nrm = sqrt(alpha * alpha + s);
                beta = alpha >= 0.0 ? -nrm : nrm;
                t = (beta - alpha) / beta;
                const double d = alpha - beta;
                for (int64_t i = 1; i < len; i++) x[i] /= d;
            }
            x[0] = beta;
            tau[k] = t;
            sgn[k] = beta < 0.0 ? -1.0 : 1.0;
            for (int64_t j = k + 1; j < k0 + b; j++) qr_reflect(x, t, at + j * m + k, len);
        }
        if (k0 + b < n) qr_block_update(q, k0, b, n, 1, tau, n_threads);
    }
    /* dorgqr: from the last block to the first, update the columns to its right, then turn the
     * block's own columns into Q's (dorg2r), zero above row k0 */
    for (int64_t k0 = (n - 1) / QR_NB * QR_NB; k0 >= 0; k0 -= QR_NB) {
        const int b = (int)(n - k0 < QR_NB ? n - k0 : QR_NB);
        if (k0 + b < n) qr_block_update(q, k0, b, n, 0, tau, n_threads);
        for (int64_t k = k0 + b - 1; k >= k0; k--) {
            double *x = at + k * m + k;
            const int64_t len = m - k;
            for (int64_t j = k + 1; j < k0 + b; j++) qr_reflect(x, tau[k], at + j * m + k, len);
            for (int64_t i = 1; i < len; i++) x[i] *= -tau[k];
            x[0] = 1.0 - tau[k];
            memset(at + k * m, 0, (size_t)k * sizeof(double));
        }
    }
    qr_transpose(at, n, m, a, sgn);                   /* a = Q diag(sgn) */
    free(at), free(vr), free(vc), free(tau), free(sgn), free(q);
    return FB_OK;
}
