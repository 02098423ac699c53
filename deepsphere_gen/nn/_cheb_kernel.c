/* One fused step of a Chebyshev (or Clenshaw) recursion on a CSR matrix, rows [r0, r1):
 *
 *     Y[i, :] = alpha * sum_j val[j] X[col[j], :] + a * A[i, :] - z * Z[i, :]
 *
 * for n dense columns (row strides ldx, ldy, lda, ldz; A or Z may be NULL; A may be Y).
 * Compiled at first use by deepsphere_gen/nn/_cheb_native.py (plain C99 + GNU vector
 * extensions, no intrinsics: the compiler vectorises for the host, -march=native).
 *
 * Why: torch's CPU CSR product (MKL) runs this at ~5x its memory/flop floor for 128 columns
 * and ~2x for one column, and a recursion step costs it two passes (product, then axpy).
 * Here each output row is accumulated in registers (8 vectors = 128 float32 columns per
 * tile) while the matrix row streams once, and the axpy terms are fused into the store.
 */
#include <stdint.h>
#include <string.h>

#define TILE(T, SUF, VW, NV)                                                                        \
  static inline void tile##NV##_##SUF(int32_t j0, int32_t j1, const int32_t* col, const T* val,    \
                                      const T* X, int64_t ldx, T* y, const T* ar, const T* zr,      \
                                      T alpha, T a, T z) {                                          \
    vec_##SUF acc[NV];                                                                              \
    for (int t = 0; t < NV; ++t) acc[t] = (vec_##SUF){0};                                           \
    for (int32_t j = j0; j < j1; ++j) {                                                             \
      T v = val[j];                                                                                 \
      const T* x = X + (int64_t)col[j] * ldx;                                                       \
      for (int t = 0; t < NV; ++t) acc[t] += v * ld_##SUF(x + VW * t);                              \
    }                                                                                               \
    for (int t = 0; t < NV; ++t) {                                                                  \
      vec_##SUF r = alpha * acc[t];                                                                 \
      if (ar) r += a * ld_##SUF(ar + VW * t);                                                       \
      if (zr) r -= z * ld_##SUF(zr + VW * t);                                                       \
      st_##SUF(y + VW * t, r);                                                                      \
    }                                                                                               \
  }

#define KERNELS(T, SUF, VW)                                                                         \
  typedef T vec_##SUF __attribute__((vector_size(64), aligned(sizeof(T))));                         \
  static inline vec_##SUF ld_##SUF(const T* p) { vec_##SUF v; memcpy(&v, p, sizeof v); return v; } \
  static inline void st_##SUF(T* p, vec_##SUF v) { memcpy(p, &v, sizeof v); }                       \
  TILE(T, SUF, VW, 8)                                                                               \
  TILE(T, SUF, VW, 4)                                                                               \
  TILE(T, SUF, VW, 2)                                                                               \
  TILE(T, SUF, VW, 1)                                                                               \
  /* one column: four partial sums (the row is short, ~21 entries for k = 20) */                    \
  static inline T dot_##SUF(int32_t j0, int32_t j1, const int32_t* col, const T* val, const T* X,   \
                            int64_t ldx) {                                                          \
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                               \
    int32_t j = j0;                                                                                 \
    for (; j + 3 < j1; j += 4) {                                                                    \
      s0 += val[j] * X[(int64_t)col[j] * ldx];                                                      \
      s1 += val[j + 1] * X[(int64_t)col[j + 1] * ldx];                                              \
      s2 += val[j + 2] * X[(int64_t)col[j + 2] * ldx];                                              \
      s3 += val[j + 3] * X[(int64_t)col[j + 3] * ldx];                                              \
    }                                                                                               \
    for (; j < j1; ++j) s0 += val[j] * X[(int64_t)col[j] * ldx];                                    \
    return (s0 + s1) + (s2 + s3);                                                                   \
  }                                                                                                 \
  static void column_##SUF(int64_t r0, int64_t r1, const int32_t* crow, const int32_t* col,         \
                           const T* val, const T* X, int64_t ldx, T* Y, int64_t ldy, const T* A,    \
                           int64_t lda, const T* Z, int64_t ldz, T alpha, T a, T z) {               \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      T s = alpha * dot_##SUF(crow[i], crow[i + 1], col, val, X, ldx);                              \
      if (A) s += a * A[i * lda];                                                                   \
      if (Z) s -= z * Z[i * ldz];                                                                   \
      Y[i * ldy] = s;                                                                               \
    }                                                                                               \
  }                                                                                                 \
  static void contiguous_column_##SUF(int64_t r0, int64_t r1, const int32_t* crow,                  \
                                      const int32_t* col, const T* val, const T* X, T* Y,           \
                                      const T* A, const T* Z, T alpha, T a, T z) {                  \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      T s = alpha * dot_##SUF(crow[i], crow[i + 1], col, val, X, 1);                                \
      if (A) s += a * A[i];                                                                         \
      if (Z) s -= z * Z[i];                                                                         \
      Y[i] = s;                                                                                     \
    }                                                                                               \
  }                                                                                                 \
  void cheb_step_##SUF(int64_t r0, int64_t r1, const int32_t* crow, const int32_t* col,             \
                       const T* val, const T* X, int64_t ldx, T* Y, int64_t ldy, const T* A,        \
                       int64_t lda, const T* Z, int64_t ldz, int64_t n, T alpha, T a, T z) {        \
    if (n == 1) {                                                                                   \
      if (ldx == 1 && ldy == 1 && (!A || lda == 1) && (!Z || ldz == 1))                             \
        contiguous_column_##SUF(r0, r1, crow, col, val, X, Y, A, Z, alpha, a, z);                   \
      else                                                                                          \
        column_##SUF(r0, r1, crow, col, val, X, ldx, Y, ldy, A, lda, Z, ldz, alpha, a, z);          \
      return;                                                                                       \
    }                                                                                               \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      int32_t j0 = crow[i], j1 = crow[i + 1];                                                       \
      T* y = Y + i * ldy;                                                                           \
      const T* ar = A ? A + i * lda : 0;                                                            \
      const T* zr = Z ? Z + i * ldz : 0;                                                            \
      int64_t c = 0;                                                                                \
      for (; c + 8 * VW <= n; c += 8 * VW)                                                          \
        tile8_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z);                                                                   \
      if (c + 4 * VW <= n) {                                                                        \
        tile4_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z);                                                                   \
        c += 4 * VW;                                                                                \
      }                                                                                             \
      if (c + 2 * VW <= n) {                                                                        \
        tile2_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z);                                                                   \
        c += 2 * VW;                                                                                \
      }                                                                                             \
      if (c + VW <= n) {                                                                            \
        tile1_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z);                                                                   \
        c += VW;                                                                                    \
      }                                                                                             \
      for (; c < n; ++c) {                                                                          \
        T s = alpha * dot_##SUF(j0, j1, col, val, X + c, ldx);                                      \
        if (ar) s += a * ar[c];                                                                     \
        if (zr) s -= z * zr[c];                                                                     \
        y[c] = s;                                                                                   \
      }                                                                                             \
    }                                                                                               \
  }

KERNELS(float, f32, 16)
KERNELS(double, f64, 8)
