/* CPU kernels of the Chebyshev filter (deepsphere_gen/nn/_cheb_sparse.py), rows [r0, r1) each,
 * compiled at first use by deepsphere_gen/nn/_cheb_native.py (C + GNU vector extensions: the
 * compiler vectorises for the host, -march=native; intrinsics only for the streaming stores and
 * the masked loads / stores of the column tails, AVX-512 or AVX, ldm_ / stm_ below).
 *
 * cheb_step:     Y[i, :] = alpha * sum_j val[j] X[col[j], :] + a * A[i, :] - z * Z[i, :]
 *                for a CSR matrix and n dense columns (row strides ldx, ldy, lda, ldz; A or Z
 *                may be NULL; A may be Y; X must not overlap Y).  One recursion step in one
 *                pass: each output row is accumulated in registers (8 vectors per tile: 128
 *                float32 columns with AVX-512, 64 with AVX2, 32 with SSE2) while the matrix row
 *                streams once, the axpy terms fused
 *                into the store.  torch's CSR product (MKL) runs at ~5x the floor on 128
 *                columns and needs a second pass for the axpy.
 * cheb_forward:  Y[r, :] = bias + sum_k T_k[r, :] W_k, the (rows, K C) x (K C, O) product of the
 *                Chebyshev stack (T_k[r, c] at T + k ks + r C) with the weights (K, C, O).
 *                nt: streaming stores of Y (the caller guarantees 64-byte aligned rows of whole
 *                vectors; HEALPix nside 1024, 1 -> 16 channels: 805 MB written, 69 -> ~40 ms).
 *                No software prefetch: the stack's rows 24-96 ahead cost +5 % at HEALPix nside
 *                32-224 (batch 8, 16 -> 32 channels, K = 5) and helped (-10 %) only at nside 256
 *                with ks = 3 * 2**27 bytes, a slowdown that padding the stack removes (-25 %,
 *                see _empty_stack in _cheb_sparse.py), after which the prefetch costs +7 %.
 * cheb_backward: per block of SUB rows (kept in cache): db += sum_r g[r, :] (summed in double;
 *                returns 1 if that buffer cannot be allocated, else 0); dW_k += T_k^T g;
 *                then G_k = g W_k^T written over T_k (the Clenshaw recursion's input).
 *                Row r of g is g + (r % B) sB + (r / B) sP (the layer's (batch, pixels, O)
 *                gradient, any batch / pixel strides).
 * The three dense products are register-blocked (6 rows x 2 vectors of outputs per tile for
 * the forward): ~100 GFLOP/s on one Zen 4 core where MKL's sgemm gets ~57 on these thin
 * shapes (inner dimension 16-80) and ~88 on square ones.
 */
#include <stdint.h>
#include <stdlib.h>
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

/* The vector width: the widest the target has registers for (64 bytes with AVX-512, 32 with
 * AVX/AVX2, else 16).  A GNU vector wider than the target's registers is split by the compiler
 * into several registers per variable, which blows up the register tiles below: built with
 * -march=haswell, 64-byte vectors spilled each accumulator to the stack and the layer ran 12x
 * slower than torch's products (HEALPix nside 64, batch 8, 16 -> 32 channels, K = 5: 2.4 s vs
 * 0.20 s forward+backward; 32-byte vectors: 0.19 s).  Between builds that both have FMA, each
 * output element covered by whole vectors is summed in the same order at any width; the columns
 * past the last whole vector are summed in another order (the step's: one masked vector of four
 * partial sums, tilem_ below), so with column counts that are not multiples of the width, builds
 * of different widths differ at float rounding (the forward's and dW's output columns past the
 * last vector run scalar loops).  A build without FMA (SSE2, AVX without FMA) rounds each multiply and add apart:
 * other bits everywhere. */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#elif defined(__AVX__)
#define VEC_BYTES 32
#else
#define VEC_BYTES 16
#endif

/* Streaming (non-temporal) stores of one vector at an address aligned to its size: the line
 * is written to memory without being read first (a plain store of a line not in cache reads
 * it: 1.5x the traffic of a large output).  Used only for outputs much larger than the caches
 * whose rows are whole 64-byte lines, 64-byte aligned (the caller decides); without AVX, a
 * plain store. */
#if defined(__AVX512F__)
#define STREAM_F32(p, v) _mm512_stream_ps((p), (__m512)(v))
#define STREAM_F64(p, v) _mm512_stream_pd((p), (__m512d)(v))
#define STREAM_FENCE() _mm_sfence()
#elif defined(__AVX__)
#define STREAM_F32(p, v) _mm256_stream_ps((p), (__m256)(v))
#define STREAM_F64(p, v) _mm256_stream_pd((p), (__m256d)(v))
#define STREAM_FENCE() _mm_sfence()
#else
#define STREAM_F32(p, v) st_f32((p), (v))
#define STREAM_F64(p, v) st_f64((p), (v))
#define STREAM_FENCE() ((void)0)
#endif
#define STREAM(SUF, p, v) STREAM_##SUF(p, v)
#define STREAM_f32(p, v) STREAM_F32(p, v)
#define STREAM_f64(p, v) STREAM_F64(p, v)

/* The one-column loops gather x[col[j]]: left scalar (GCC would vectorise them with gather
 * instructions, 15 % slower on Zen 4 at HEALPix nside 512). */
#if defined(__GNUC__) && !defined(__clang__)
#define SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize")))
#else
#define SCALAR_LOOPS
#endif

/* The forward's register tiles are forced inline: called out of line (GCC's choice), each call
 * spilled its accumulators to the stack and back (HEALPix nside 64, 16 -> 32 channels: the
 * forward product 20.2 -> 18.6 ms inlined; the step's tiles ran slower inlined: left alone). */
#define TILE_FN static inline __attribute__((always_inline))

/* rows ahead at which cheb_step prefetches its streamed operands A and Z (with a schedule, i.e.
 * operands beyond the caches): the hardware prefetcher alone fell behind with the gathered
 * rows, the matrix and three dense streams in flight (HEALPix nside 256, 128 columns: a step
 * 116 -> 96 ms, a Clenshaw step 148 -> 124 ms; nside 64: 6.8 -> 5.9 ms; 16-64 rows alike) */
#define SEQ_AHEAD 32
/* ldm_ / stm_: loads and stores of the first n < VW elements of a vector (the rest read as 0, not
 * touched): one masked instruction with AVX-512 or AVX, else an element loop.  The tails of the
 * step (columns past the last whole vector) and of G = g W^T (channels past it) run one vector
 * wide with them; they were one scalar dot product per column, which re-read the matrix row
 * and gathered X once per column: a step of 8 float32 columns (HEALPix nside 256, k = 20) took
 * 2x torch's CSR product, and 4 channels 2x its backward. */
#if defined(__AVX512F__)
#define MASKED_f32                                                                                  \
  static inline vec_f32 ldm_f32(const float* p, int64_t n) {                                        \
    return (vec_f32)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);                           \
  }                                                                                                 \
  static inline void stm_f32(float* p, vec_f32 v, int64_t n) {                                      \
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);                                \
  }
#define MASKED_f64                                                                                  \
  static inline vec_f64 ldm_f64(const double* p, int64_t n) {                                       \
    return (vec_f64)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);                            \
  }                                                                                                 \
  static inline void stm_f64(double* p, vec_f64 v, int64_t n) {                                     \
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);                                \
  }
#elif defined(__AVX__)
/* lane masks: the 8 - n (f32) or 4 - n (f64) entries from the start select n lanes */
static const int32_t mask32_[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static const int64_t mask64_[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#define MASKED_f32                                                                                  \
  static inline vec_f32 ldm_f32(const float* p, int64_t n) {                                        \
    return (vec_f32)_mm256_maskload_ps(p, _mm256_loadu_si256((const __m256i*)(mask32_ + 8 - n)));   \
  }                                                                                                 \
  static inline void stm_f32(float* p, vec_f32 v, int64_t n) {                                      \
    _mm256_maskstore_ps(p, _mm256_loadu_si256((const __m256i*)(mask32_ + 8 - n)), (__m256)v);       \
  }
#define MASKED_f64                                                                                  \
  static inline vec_f64 ldm_f64(const double* p, int64_t n) {                                       \
    return (vec_f64)_mm256_maskload_pd(p, _mm256_loadu_si256((const __m256i*)(mask64_ + 4 - n)));   \
  }                                                                                                 \
  static inline void stm_f64(double* p, vec_f64 v, int64_t n) {                                     \
    _mm256_maskstore_pd(p, _mm256_loadu_si256((const __m256i*)(mask64_ + 4 - n)), (__m256d)v);      \
  }
#else
#define MASKED_LOOP(T, SUF)                                                                         \
  static inline vec_##SUF ldm_##SUF(const T* p, int64_t n) {                                        \
    vec_##SUF v = {0};                                                                              \
    for (int64_t e = 0; e < n; ++e) v[e] = p[e];                                                    \
    return v;                                                                                       \
  }                                                                                                 \
  static inline void stm_##SUF(T* p, vec_##SUF v, int64_t n) {                                      \
    for (int64_t e = 0; e < n; ++e) p[e] = v[e];                                                    \
  }
#define MASKED_f32 MASKED_LOOP(float, f32)
#define MASKED_f64 MASKED_LOOP(double, f64)
#endif

/* the step's columns past the last whole vector (n < VW of them), one vector wide, masked; four
 * partial sums (independent FMA chains) */
#define TILE_PART(T, SUF)                                                                           \
  static inline void tilem_##SUF(int32_t j0, int32_t j1, const int32_t* col, const T* val,          \
                                 const T* X, int64_t ldx, T* y, const T* ar, const T* zr,           \
                                 T alpha, T a, T z, int64_t n) {                                    \
    vec_##SUF acc0 = (vec_##SUF){0}, acc1 = acc0, acc2 = acc0, acc3 = acc0;                         \
    int32_t j = j0;                                                                                 \
    for (; j + 3 < j1; j += 4) {                                                                    \
      acc0 += val[j] * ldm_##SUF(X + (int64_t)col[j] * ldx, n);                                     \
      acc1 += val[j + 1] * ldm_##SUF(X + (int64_t)col[j + 1] * ldx, n);                             \
      acc2 += val[j + 2] * ldm_##SUF(X + (int64_t)col[j + 2] * ldx, n);                             \
      acc3 += val[j + 3] * ldm_##SUF(X + (int64_t)col[j + 3] * ldx, n);                             \
    }                                                                                               \
    for (; j < j1; ++j) acc0 += val[j] * ldm_##SUF(X + (int64_t)col[j] * ldx, n);                   \
    vec_##SUF r = alpha * ((acc0 + acc1) + (acc2 + acc3));                                          \
    if (ar) r += a * ldm_##SUF(ar, n);                                                              \
    if (zr) r -= z * ldm_##SUF(zr, n);                                                              \
    stm_##SUF(y, r, n);                                                                             \
  }

#define TILE(T, SUF, VW, NV)                                                                        \
  static inline void tile##NV##_##SUF(int32_t j0, int32_t j1, const int32_t* col, const T* val,    \
                                      const T* X, int64_t ldx, T* y, const T* ar, const T* zr,      \
                                      T alpha, T a, T z, int nt) {                                  \
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
      if (nt)                                                                                       \
        STREAM(SUF, y + VW * t, r);                                                                 \
      else                                                                                          \
        st_##SUF(y + VW * t, r);                                                                    \
    }                                                                                               \
  }

/* ld_ / st_: unaligned vector loads and stores through a may_alias type, one instruction each.
 * They were memcpy to / from a local vector, which GCC 12 expands "by pieces" no wider than the
 * tuning's preferred width: with -march=native on a Xeon with AVX-512 (tuned as Rocket Lake,
 * preferring 256 bits), each 64-byte load became two 32-byte copies to the stack read back as
 * one 64-byte register, a failed store-to-load forwarding per load, and the accumulator tiles
 * lived on the stack: the layer of the comment above ran 4x slower than torch's products (0.79
 * vs 0.19 s); with -mtune=znver3 (Zen) or sapphirerapids the copy was one piece.  Same
 * arithmetic, same bits. */
#define KERNELS(T, SUF, VW)                                                                         \
  typedef T vec_##SUF __attribute__((vector_size(VEC_BYTES), aligned(sizeof(T))));                  \
  typedef T uvec_##SUF __attribute__((vector_size(VEC_BYTES), aligned(sizeof(T)), may_alias));      \
  static inline vec_##SUF ld_##SUF(const T* p) { return *(const uvec_##SUF*)p; }                    \
  static inline void st_##SUF(T* p, vec_##SUF v) { *(uvec_##SUF*)p = v; }                           \
  TILE(T, SUF, VW, 8)                                                                               \
  TILE(T, SUF, VW, 4)                                                                               \
  TILE(T, SUF, VW, 2)                                                                               \
  TILE(T, SUF, VW, 1)                                                                               \
  MASKED_##SUF                                                                                      \
  TILE_PART(T, SUF)                                                                                 \
  /* one column: four partial sums (the row is short, ~21 entries for k = 20) */                    \
  SCALAR_LOOPS static inline T dot_##SUF(int32_t j0, int32_t j1, const int32_t* col, const T* val, const T* X,   \
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
  SCALAR_LOOPS static void column_##SUF(int64_t r0, int64_t r1, const int32_t* crow, const int32_t* col,         \
                           const T* val, const T* X, int64_t ldx, T* Y, int64_t ldy, const T* A,    \
                           int64_t lda, const T* Z, int64_t ldz, T alpha, T a, T z) {               \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      T s = alpha * dot_##SUF(crow[i], crow[i + 1], col, val, X, ldx);                              \
      if (A) s += a * A[i * lda];                                                                   \
      if (Z) s -= z * Z[i * ldz];                                                                   \
      Y[i * ldy] = s;                                                                               \
    }                                                                                               \
  }                                                                                                 \
  /* one contiguous column: the rows are short (~10-21 entries), two partial sums, j carried */   \
  /* pf_dist > 0: x[i + pf_dist] is prefetched at row i (once per cache line; i + pf_dist < r1) */ \
  SCALAR_LOOPS static void contiguous_column_##SUF(int64_t r0, int64_t r1, const int32_t* crow,                  \
                                      const int32_t* col, const T* val, const T* X, T* Y,           \
                                      const T* A, const T* Z, T alpha, T a, T z, int64_t pf_dist) { \
    int32_t j = crow[r0];                                                                           \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      if (pf_dist > 0 && (i & (64 / sizeof(T) - 1)) == 0 && i + pf_dist < r1)                       \
        __builtin_prefetch(X + i + pf_dist, 0, 3);                                                  \
      int32_t j1 = crow[i + 1];                                                                     \
      T s0 = 0, s1 = 0;                                                                             \
      for (; j + 1 < j1; j += 2) {                                                                  \
        s0 += val[j] * X[col[j]];                                                                   \
        s1 += val[j + 1] * X[col[j + 1]];                                                           \
      }                                                                                             \
      if (j < j1) {                                                                                 \
        s0 += val[j] * X[col[j]];                                                                   \
        ++j;                                                                                        \
      }                                                                                             \
      T s = alpha * (s0 + s1);                                                                      \
      if (A) s += a * A[i];                                                                         \
      if (Z) s -= z * Z[i];                                                                         \
      Y[i] = s;                                                                                     \
    }                                                                                               \
  }                                                                                                 \
  /* rows [r0, r1) of the step for n > 1 columns */                                                \
  static void step_rows_##SUF(int64_t r0, int64_t r1, const int32_t* crow, const int32_t* col,      \
                              const T* val, const T* X, int64_t ldx, T* Y, int64_t ldy,             \
                              const T* A, int64_t lda, const T* Z, int64_t ldz, int64_t n, T alpha, \
                              T a, T z, const int32_t* pf_ptr, const int32_t* pf_rows,              \
                              int64_t pf_dist, int32_t nt) {                                        \
    int64_t row_bytes = n * (int64_t)sizeof(T);                                                     \
    for (int64_t i = r0; i < r1; ++i) {                                                             \
      int32_t j0 = crow[i], j1 = crow[i + 1];                                                       \
      if (pf_ptr && i + pf_dist < r1) /* rows of X that row i + pf_dist reads from beyond the cache */ \
        for (int32_t q = pf_ptr[i + pf_dist]; q < pf_ptr[i + pf_dist + 1]; ++q) {                   \
          const char* p = (const char*)(X + (int64_t)pf_rows[q] * ldx);                             \
          for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(p + b, 0, 3);              \
        }                                                                                           \
      if (pf_ptr && i + SEQ_AHEAD < r1) { /* the streamed operands, SEQ_AHEAD rows ahead */          \
        for (int64_t b = 0; b < row_bytes; b += 64) {                                               \
          if (Z) __builtin_prefetch((const char*)(Z + (i + SEQ_AHEAD) * ldz) + b, 0, 0);            \
          if (A) __builtin_prefetch((const char*)(A + (i + SEQ_AHEAD) * lda) + b, 0, 0);            \
        }                                                                                           \
      }                                                                                             \
      T* y = Y + i * ldy;                                                                           \
      const T* ar = A ? A + i * lda : 0;                                                            \
      const T* zr = Z ? Z + i * ldz : 0;                                                            \
      int64_t c = 0;                                                                                \
      for (; c + 8 * VW <= n; c += 8 * VW)                                                          \
        tile8_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z, nt);                                                               \
      if (c + 4 * VW <= n) {                                                                        \
        tile4_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z, nt);                                                               \
        c += 4 * VW;                                                                                \
      }                                                                                             \
      if (c + 2 * VW <= n) {                                                                        \
        tile2_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z, nt);                                                               \
        c += 2 * VW;                                                                                \
      }                                                                                             \
      if (c + VW <= n) {                                                                            \
        tile1_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z, nt);                                                               \
        c += VW;                                                                                    \
      }                                                                                             \
      if (c < n)                                                                                    \
        tilem_##SUF(j0, j1, col, val, X + c, ldx, y + c, ar ? ar + c : 0, zr ? zr + c : 0,          \
                    alpha, a, z, n - c);                                                            \
    }                                                                                               \
  }                                                                                                 \
  void cheb_step_##SUF(int64_t r0, int64_t r1, const int32_t* crow, const int32_t* col,             \
                       const T* val, const T* X, int64_t ldx, T* Y, int64_t ldy, const T* A,        \
                       int64_t lda, const T* Z, int64_t ldz, int64_t n, T alpha, T a, T z,          \
                       const int32_t* pf_ptr, const int32_t* pf_rows, int64_t pf_dist, int32_t nt) { \
    if (n == 1) {                                                                                   \
      if (ldx == 1 && ldy == 1 && (!A || lda == 1) && (!Z || ldz == 1))                             \
        contiguous_column_##SUF(r0, r1, crow, col, val, X, Y, A, Z, alpha, a, z, pf_dist);          \
      else                                                                                          \
        column_##SUF(r0, r1, crow, col, val, X, ldx, Y, ldy, A, lda, Z, ldz, alpha, a, z);          \
      return;                                                                                       \
    }                                                                                               \
    step_rows_##SUF(r0, r1, crow, col, val, X, ldx, Y, ldy, A, lda, Z, ldz, n, alpha, a, z, pf_ptr, \
                    pf_rows, pf_dist, nt);                                                          \
    if (nt) STREAM_FENCE();                                                                         \
  }

/* ---- forward product: R rows x NV vectors of outputs from column o0 ---- */
#define FWD_TILE(T, SUF, VW, R, NV)                                                                 \
  TILE_FN void fwd_##R##_##NV##_##SUF(int64_t r, int64_t K, int64_t C, int64_t O, const T* Tb, \
                                            int64_t ks, const T* W, const T* bias, T* Y, int64_t o0,   \
                                            int nt) {                                                   \
    vec_##SUF acc[R][NV];                                                                           \
    for (int i = 0; i < R; ++i)                                                                     \
      for (int v = 0; v < NV; ++v) acc[i][v] = bias ? ld_##SUF(bias + o0 + VW * v) : (vec_##SUF){0}; \
    for (int64_t k = 0; k < K; ++k) {                                                               \
      const T* t = Tb + k * ks + r * C;                                                             \
      const T* w = W + k * C * O + o0;                                                              \
      for (int64_t c = 0; c < C; ++c) {                                                             \
        vec_##SUF wv[NV];                                                                           \
        for (int v = 0; v < NV; ++v) wv[v] = ld_##SUF(w + c * O + VW * v);                          \
        for (int i = 0; i < R; ++i) {                                                               \
          T s = t[i * C + c];                                                                       \
          for (int v = 0; v < NV; ++v) acc[i][v] += s * wv[v];                                      \
        }                                                                                           \
      }                                                                                             \
    }                                                                                               \
    for (int i = 0; i < R; ++i)                                                                     \
      for (int v = 0; v < NV; ++v) {                                                                \
        if (nt)                                                                                     \
          STREAM(SUF, Y + (r + i) * O + o0 + VW * v, acc[i][v]);                                    \
        else                                                                                        \
          st_##SUF(Y + (r + i) * O + o0 + VW * v, acc[i][v]);                                       \
      }                                                                                             \
  }

#define FWD_ROWS(T, SUF, VW, R)                                                                     \
  FWD_TILE(T, SUF, VW, R, 2)                                                                        \
  FWD_TILE(T, SUF, VW, R, 1)                                                                        \
  TILE_FN void fwd_rows##R##_##SUF(int64_t r, int64_t K, int64_t C, int64_t O, const T* Tb,   \
                                         int64_t ks, const T* W, const T* bias, T* Y, int nt) {     \
    int64_t o0 = 0;                                                                                 \
    for (; o0 + 2 * VW <= O; o0 += 2 * VW) fwd_##R##_2_##SUF(r, K, C, O, Tb, ks, W, bias, Y, o0, nt); \
    if (o0 + VW <= O) { fwd_##R##_1_##SUF(r, K, C, O, Tb, ks, W, bias, Y, o0, nt); o0 += VW; }     \
    for (; o0 < O; ++o0)                                                                            \
      for (int i = 0; i < R; ++i) {                                                                 \
        T s = bias ? bias[o0] : 0;                                                                  \
        for (int64_t k = 0; k < K; ++k)                                                             \
          for (int64_t c = 0; c < C; ++c) s += Tb[k * ks + (r + i) * C + c] * W[(k * C + c) * O + o0]; \
        Y[(r + i) * O + o0] = s;                                                                    \
      }                                                                                             \
  }

/* ---- G_k[r, c0 : c0 + VW] = sum_o g_r[o] Wt[k, o, c0 : ...] for R rows, two orders at a time ----
 * dt_: whole vectors (LD_FULL / ST_FULL); dtm_: the n < VW channels past them (LD_PART / ST_PART) */
#define LD_FULL(SUF, p) ld_##SUF(p)
#define ST_FULL(SUF, p, v) st_##SUF(p, v)
#define LD_PART(SUF, p) ldm_##SUF(p, n)
#define ST_PART(SUF, p, v) stm_##SUF(p, v, n)
#define DT_KERNEL(T, SUF, R, NAME, LD, ST)                                                          \
  static inline void NAME##R##_##SUF(const T* const* g, int64_t K, int64_t C, int64_t O, const T* Wt, \
                                     T* Gb, int64_t ks, int64_t r, int64_t c0, int64_t n) {         \
    (void)n;                                                                                        \
    int64_t k = 0;                                                                                  \
    for (; k + 2 <= K; k += 2) {                                                                    \
      vec_##SUF acc[R][2];                                                                          \
      for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = (vec_##SUF){0};                           \
      const T* w0 = Wt + k * O * C + c0;                                                            \
      const T* w1 = w0 + O * C;                                                                     \
      for (int64_t o = 0; o < O; ++o) {                                                             \
        vec_##SUF a0 = LD(SUF, w0 + o * C), a1 = LD(SUF, w1 + o * C);                              \
        for (int i = 0; i < R; ++i) { T s = g[i][o]; acc[i][0] += s * a0; acc[i][1] += s * a1; }    \
      }                                                                                             \
      for (int i = 0; i < R; ++i) {                                                                 \
        ST(SUF, Gb + k * ks + (r + i) * C + c0, acc[i][0]);                                         \
        ST(SUF, Gb + (k + 1) * ks + (r + i) * C + c0, acc[i][1]);                                   \
      }                                                                                             \
    }                                                                                               \
    if (k < K) {                                                                                    \
      vec_##SUF acc[R];                                                                             \
      for (int i = 0; i < R; ++i) acc[i] = (vec_##SUF){0};                                          \
      const T* w0 = Wt + k * O * C + c0;                                                            \
      for (int64_t o = 0; o < O; ++o) {                                                             \
        vec_##SUF a0 = LD(SUF, w0 + o * C);                                                         \
        for (int i = 0; i < R; ++i) acc[i] += g[i][o] * a0;                                         \
      }                                                                                             \
      for (int i = 0; i < R; ++i) ST(SUF, Gb + k * ks + (r + i) * C + c0, acc[i]);                  \
    }                                                                                               \
  }
#define DT_TILE(T, SUF, VW, R)                                                                      \
  DT_KERNEL(T, SUF, R, dt_, LD_FULL, ST_FULL)                                                       \
  DT_KERNEL(T, SUF, R, dtm_, LD_PART, ST_PART)                                                      \
  static inline void dt_rows##R##_##SUF(const T* const* g, int64_t K, int64_t C, int64_t O,         \
                                        const T* Wt, T* Gb, int64_t ks, int64_t r) {                \
    int64_t c0 = 0;                                                                                 \
    for (; c0 + VW <= C; c0 += VW) dt_##R##_##SUF(g, K, C, O, Wt, Gb, ks, r, c0, VW);               \
    if (c0 < C) dtm_##R##_##SUF(g, K, C, O, Wt, Gb, ks, r, c0, C - c0);                             \
  }

/* ---- dW_k[c0 : c0 + CB, o0 : o0 + NV VW] += sum_r T_k[r, c] g_r[o] over rows [0, m) of a block ---- */
#define DW_TILE(T, SUF, VW, CB, NV)                                                                 \
  static inline void dw_##CB##_##NV##_##SUF(const T* const* g, const T* t, int64_t C, int64_t m,     \
                                            T* dw, int64_t O, int64_t o0) {                         \
    vec_##SUF acc[CB][NV];                                                                          \
    for (int c = 0; c < CB; ++c)                                                                    \
      for (int v = 0; v < NV; ++v) acc[c][v] = (vec_##SUF){0};                                      \
    for (int64_t r = 0; r < m; ++r) {                                                               \
      vec_##SUF gv[NV];                                                                             \
      for (int v = 0; v < NV; ++v) gv[v] = ld_##SUF(g[r] + o0 + VW * v);                            \
      const T* tr = t + r * C;                                                                      \
      for (int c = 0; c < CB; ++c) {                                                                \
        T s = tr[c];                                                                                \
        for (int v = 0; v < NV; ++v) acc[c][v] += s * gv[v];                                        \
      }                                                                                             \
    }                                                                                               \
    for (int c = 0; c < CB; ++c)                                                                    \
      for (int v = 0; v < NV; ++v) {                                                                \
        T* d = dw + c * O + o0 + VW * v;                                                            \
        st_##SUF(d, ld_##SUF(d) + acc[c][v]);                                                       \
      }                                                                                             \
  }

/* the output columns o0.. that no vector tile covers, one scalar dot product each */
#define DW_TAIL(T, CB)                                                                              \
    for (; o0 < O; ++o0)                                                                            \
      for (int c = 0; c < CB; ++c) {                                                                \
        T s = 0;                                                                                    \
        for (int64_t r = 0; r < m; ++r) s += t[r * C + c] * g[r][o0];                               \
        dw[c * O + o0] += s;                                                                        \
      }

#define DW_COLS(T, SUF, VW, CB)                                                                     \
  DW_TILE(T, SUF, VW, CB, 2)                                                                        \
  DW_TILE(T, SUF, VW, CB, 1)                                                                        \
  static inline void dw_cols##CB##_##SUF(const T* const* g, const T* t, int64_t C, int64_t m,       \
                                         T* dw, int64_t O) {                                        \
    int64_t o0 = 0;                                                                                 \
    for (; o0 + 2 * VW <= O; o0 += 2 * VW) dw_##CB##_2_##SUF(g, t, C, m, dw, O, o0);                \
    if (o0 + VW <= O) { dw_##CB##_1_##SUF(g, t, C, m, dw, O, o0); o0 += VW; }                      \
    DW_TAIL(T, CB)                                                                                  \
  }

/* 16 channels x one vector of outputs: each T value feeds one product, which with AVX-512 takes
 * it as an embedded broadcast from memory; the 8 x 2 tile broadcasts it into a register first,
 * an extra shuffle that competes with the products for Zen 4's FP pipes.  AVX-512 only (see
 * DW_COLS16): its 16 accumulators, g and the broadcast need more than AVX2's 16 registers */
#define DW_COLS_ONE(T, SUF, VW, CB)                                                                 \
  static inline void dw_cols##CB##_##SUF(const T* const* g, const T* t, int64_t C, int64_t m,       \
                                         T* dw, int64_t O) {                                        \
    int64_t o0 = 0;                                                                                 \
    for (; o0 + VW <= O; o0 += VW) dw_##CB##_1_##SUF(g, t, C, m, dw, O, o0);                        \
    DW_TAIL(T, CB)                                                                                  \
  }

#define SUB 256 /* rows per backward block: T (K x SUB x C) and g (SUB x O) stay in L2 */

/* 16-channel dW tiles with 32 vector registers (AVX-512) only: with AVX2's 16, two or three
 * accumulators of the 16 x 1 and 8 x 2 tiles live on the stack inside the row loop (a
 * -march=haswell build on an AVX-512 Xeon: dW of 393216 rows, K = 5, 16 -> 32 channels, 44 ms;
 * through the 8-channel tiles 39 ms) */
#define DW_COLS16 (VEC_BYTES == 64)

#define DENSE(T, SUF, VW)                                                                           \
  FWD_ROWS(T, SUF, VW, 6)                                                                           \
  FWD_ROWS(T, SUF, VW, 1)                                                                           \
  /* one input channel (C = 1, O a multiple of VW): y_r = bias + sum_k T_k[r] W_k, 4 rows at a */  \
  /* time, no channel loop (the general tiles spent more on loop overhead than on arithmetic) */    \
  static void fwd_c1_##SUF(int64_t r0, int64_t r1, int64_t K, int64_t O, const T* Tb, int64_t ks,   \
                           const T* W, const T* bias, T* Y, int32_t nt) {                           \
    for (int64_t r = r0; r < r1; r += 4) {                                                          \
      int R = r1 - r < 4 ? (int)(r1 - r) : 4;                                                       \
      for (int64_t o0 = 0; o0 < O; o0 += VW) {                                                      \
        vec_##SUF b = bias ? ld_##SUF(bias + o0) : (vec_##SUF){0};                                  \
        vec_##SUF acc0 = b, acc1 = b, acc2 = b, acc3 = b;                                           \
        if (R == 4)                                                                                 \
          for (int64_t k = 0; k < K; ++k) {                                                         \
            vec_##SUF w = ld_##SUF(W + k * O + o0);                                                 \
            const T* t = Tb + k * ks + r;                                                           \
            acc0 += t[0] * w; acc1 += t[1] * w; acc2 += t[2] * w; acc3 += t[3] * w;                 \
          }                                                                                         \
        else                                                                                        \
          for (int64_t k = 0; k < K; ++k) {                                                         \
            vec_##SUF w = ld_##SUF(W + k * O + o0);                                                 \
            const T* t = Tb + k * ks + r;                                                           \
            acc0 += t[0] * w;                                                                       \
            if (R > 1) acc1 += t[1] * w;                                                            \
            if (R > 2) acc2 += t[2] * w;                                                            \
          }                                                                                         \
        vec_##SUF acc[4] = {acc0, acc1, acc2, acc3};                                                \
        for (int i = 0; i < R; ++i) {                                                               \
          if (nt)                                                                                   \
            STREAM(SUF, Y + (r + i) * O + o0, acc[i]);                                              \
          else                                                                                      \
            st_##SUF(Y + (r + i) * O + o0, acc[i]);                                                 \
        }                                                                                           \
      }                                                                                             \
    }                                                                                               \
  }                                                                                                 \
  void cheb_forward_##SUF(int64_t r0, int64_t r1, int64_t K, int64_t C, int64_t O, const T* Tb,     \
                          int64_t ks, const T* W, const T* bias, T* Y, int32_t nt) {                \
    if (C == 1 && O % VW == 0) {                                                                    \
      fwd_c1_##SUF(r0, r1, K, O, Tb, ks, W, bias, Y, nt);                                           \
      if (nt) STREAM_FENCE();                                                                       \
      return;                                                                                       \
    }                                                                                               \
    int64_t r = r0;                                                                                 \
    for (; r + 6 <= r1; r += 6) fwd_rows6_##SUF(r, K, C, O, Tb, ks, W, bias, Y, nt);                \
    for (; r < r1; ++r) fwd_rows1_##SUF(r, K, C, O, Tb, ks, W, bias, Y, nt);                        \
    if (nt) STREAM_FENCE();                                                                         \
  }                                                                                                 \
  DT_TILE(T, SUF, VW, 6)                                                                            \
  DT_TILE(T, SUF, VW, 1)                                                                            \
  DW_TILE(T, SUF, VW, 16, 1)                                                                        \
  DW_COLS_ONE(T, SUF, VW, 16)                                                                       \
  DW_COLS(T, SUF, VW, 8)                                                                            \
  DW_COLS(T, SUF, VW, 1)                                                                            \
  int cheb_backward_##SUF(int64_t r0, int64_t r1, int64_t K, int64_t C, int64_t O, T* Tb,          \
                           int64_t ks, const T* g, int64_t B, int64_t sB, int64_t sP, const T* Wt,  \
                           T* dW, T* db, int32_t dT) {                                              \
    const T* gp[SUB];                                                                               \
    double* dbacc = db ? calloc((size_t)O, sizeof(double)) : 0; /* the bias gradient sums in double */ \
    if (db && !dbacc) return 1; /* out of memory: the caller raises */                              \
    for (int64_t rs = r0; rs < r1; rs += SUB) {                                                     \
      int64_t m = r1 - rs < SUB ? r1 - rs : SUB;                                                    \
      { /* row rs + r = (pixel p, batch b): counters, no division per row */                      \
        int64_t b = rs % B, p = rs / B;                                                             \
        for (int64_t r = 0; r < m; ++r) {                                                           \
          gp[r] = g + b * sB + p * sP;                                                              \
          if (++b == B) { b = 0; ++p; }                                                             \
        }                                                                                           \
      }                                                                                             \
      if (dbacc) { /* the block's sum in vectors (two chains), added to the double sums */         \
        int64_t o = 0;                                                                              \
        for (; o + VW <= O; o += VW) {                                                              \
          vec_##SUF s0 = (vec_##SUF){0}, s1 = (vec_##SUF){0};                                       \
          int64_t r = 0;                                                                            \
          for (; r + 1 < m; r += 2) { s0 += ld_##SUF(gp[r] + o); s1 += ld_##SUF(gp[r + 1] + o); }   \
          if (r < m) s0 += ld_##SUF(gp[r] + o);                                                     \
          T part[VW];                                                                               \
          st_##SUF(part, s0 + s1);                                                                  \
          for (int v = 0; v < VW; ++v) dbacc[o + v] += part[v];                                     \
        }                                                                                           \
        for (; o < O; ++o)                                                                          \
          for (int64_t r = 0; r < m; ++r) dbacc[o] += gp[r][o];                                     \
      }                                                                                             \
      if (dW)                                                                                       \
        for (int64_t k = 0; k < K; ++k) {                                                           \
          const T* t = Tb + k * ks + rs * C;                                                        \
          int64_t c = 0;                                                                            \
          for (; DW_COLS16 && c + 16 <= C; c += 16) dw_cols16_##SUF(gp, t + c, C, m, dW + (k * C + c) * O, O);  \
          for (; c + 8 <= C; c += 8) dw_cols8_##SUF(gp, t + c, C, m, dW + (k * C + c) * O, O);      \
          for (; c < C; ++c) dw_cols1_##SUF(gp, t + c, C, m, dW + (k * C + c) * O, O);              \
        }                                                                                           \
      if (dT) {                                                                                     \
        int64_t r = 0;                                                                              \
        for (; r + 6 <= m; r += 6) dt_rows6_##SUF(gp + r, K, C, O, Wt, Tb, ks, rs + r);             \
        for (; r < m; ++r) dt_rows1_##SUF(gp + r, K, C, O, Wt, Tb, ks, rs + r);                     \
      }                                                                                             \
    }                                                                                               \
    if (dbacc) {                                                                                    \
      for (int64_t o = 0; o < O; ++o) db[o] += (T)dbacc[o];                                         \
      free(dbacc);                                                                                  \
    }                                                                                               \
    return 0;                                                                                       \
  }

/* Prefetch schedule of a CSR matrix (rows, ncols) for cheb_step: for each row i, the columns j
 * it reads that no row in (i - window, i) read (first uses and long reuse distances), whose
 * rows of the dense operand are then out of the near caches.  rows_out NULL: writes ptr (rows
 * + 1 prefix sums of the counts); else fills rows_out (ptr[rows] entries).  last: ncols int32
 * of scratch.  O(nnz + ncols). */
void cheb_schedule(int64_t rows, const int32_t* crow, const int32_t* col, int64_t ncols, int64_t window,
                   int32_t* last, int32_t* ptr, int32_t* rows_out) {
  int32_t w = 0;
  for (int64_t j = 0; j < ncols; ++j) last[j] = INT32_MIN;
  if (!rows_out) ptr[0] = 0;
  for (int64_t i = 0; i < rows; ++i) {
    for (int32_t q = crow[i]; q < crow[i + 1]; ++q) {
      int32_t j = col[q];
      if (i - (int64_t)last[j] > window) {
        if (rows_out) rows_out[w] = j;
        ++w;
      }
      last[j] = (int32_t)i;
    }
    if (!rows_out) ptr[i + 1] = w;
  }
}

KERNELS(float, f32, (VEC_BYTES / 4))
KERNELS(double, f64, (VEC_BYTES / 8))
DENSE(float, f32, (VEC_BYTES / 4))
DENSE(double, f64, (VEC_BYTES / 8))

/* ---- one float32 column in a sliced layout (SELL-16, AVX-512 only) ----
 * The one-column CSR loop is bound by its loads (matrix column, value, gathered x: three per
 * non-zero, ~1.7 cycles each on Zen 4, a HEALPix nside-1024 step at 1.8x the bytes it must
 * move).  Rows are cut into slices of 16 (rows 16 s .. 16 s + 15, one vector of outputs);
 * slice s has width w_s = its longest row, and holds w_s slots of 16 (column, value) pairs,
 * lane l of slot q being an entry of row 16 s + l (column-major within the slice).  Each row
 * lists first its entries whose column lies in the slice's own window [16 s, 16 s + 16),
 * then padding (column = the row itself, value 0), then the entries outside the window, at
 * the end of the row; so the first np_s slots read x only inside the window, which is loaded
 * once as one vector, each slot a register permutation (vpermps) instead of 16 loads; the
 * other slots gather.  A HEALPix kNN graph in NESTED order (16 consecutive pixels: a 4 x 4
 * block) has ~70 % of its entries inside the window and np_s ~ 3.8 of 9 slots: a step runs
 * 0.64x the time of the CSR loop (nside 1024, k = 8).  The padding computes 0 * x (NaN where
 * x is infinite).  The layout is built once per matrix by cheb_sell_build. */
#if defined(__AVX512F__)
int cheb_sell_available(void) { return 1; }

/* The sliced layout of rows [0, 16 S) of CSR (crow, col, val), S = rows / 16, in two calls:
 * out_val NULL: writes soff (S + 1 prefix sums of 16 w_s) and np (S); else fills out_col and
 * out_val (soff[S] entries each).  O(nnz) each. */
void cheb_sell_build(int64_t rows, const int32_t* crow, const int32_t* col, const float* val, int64_t* soff,
                     int32_t* np, int32_t* out_col, float* out_val) {
  int64_t S = rows / 16;
  if (!out_val) soff[0] = 0;
  for (int64_t s = 0; s < S; ++s) {
    int32_t w = 0, maxout = 0;
    for (int l = 0; l < 16; ++l) {
      int64_t i = 16 * s + l;
      int32_t nout = 0;
      for (int32_t j = crow[i]; j < crow[i + 1]; ++j) nout += (col[j] >> 4) != s;
      if (crow[i + 1] - crow[i] > w) w = crow[i + 1] - crow[i];
      if (nout > maxout) maxout = nout;
    }
    if (!out_val) {
      soff[s + 1] = soff[s] + 16 * (int64_t)w;
      np[s] = w - maxout;
      continue;
    }
    w = (int32_t)((soff[s + 1] - soff[s]) / 16);
    for (int l = 0; l < 16; ++l) {
      int64_t i = 16 * s + l;
      int32_t* c = out_col + soff[s] + l;
      float* v = out_val + soff[s] + l;
      int32_t q = 0, nout = 0;
      for (int32_t j = crow[i]; j < crow[i + 1]; ++j) nout += (col[j] >> 4) != s;
      int32_t qo = w - nout; /* the entries outside the window fill the last slots */
      for (int32_t j = crow[i]; j < crow[i + 1]; ++j) {
        if ((col[j] >> 4) == s) { c[16 * q] = col[j]; v[16 * q] = val[j]; ++q; }
        else { c[16 * qo] = col[j]; v[16 * qo] = val[j]; ++qo; }
      }
      for (; q < w - nout; ++q) { c[16 * q] = (int32_t)i; v[16 * q] = 0.0f; }
    }
  }
}

/* Y = alpha L X + a A - z Z for rows [r0, r1) (r0 a multiple of 16; A or Z may be NULL, A may
 * be Y): whole slices from the sliced layout, the rows of the last partial slice (rows % 16)
 * from CSR.  pf_dist > 0: X prefetched that many elements ahead.  nt: streaming stores of Y
 * (64-byte aligned). */
void cheb_sell_step_f32(int64_t r0, int64_t r1, int64_t rows, const int64_t* soff, const int32_t* np,
                        const int32_t* scol, const float* sval, const int32_t* crow, const int32_t* col,
                        const float* val, const float* X, float* Y, const float* A, const float* Z, float alpha,
                        float a, float z, int64_t pf_dist, int32_t nt) {
  int64_t full = 16 * (rows / 16), re = r1 < full ? r1 : full;
  __m512 va = _mm512_set1_ps(alpha), vA = _mm512_set1_ps(a), vZ = _mm512_set1_ps(z);
  for (int64_t i = r0; i < re; i += 16) {
    int64_t s = i / 16;
    if (pf_dist > 0 && i + pf_dist < rows) __builtin_prefetch(X + i + pf_dist, 0, 3);
    int64_t o = soff[s], e = soff[s + 1], m = o + 16 * (int64_t)np[s];
    __m512 xw = _mm512_loadu_ps(X + i);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; o < m; o += 16)
      acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(sval + o), _mm512_permutexvar_ps(_mm512_loadu_si512(scol + o), xw), acc0);
    for (; o < e; o += 16)
      acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(sval + o), _mm512_i32gather_ps(_mm512_loadu_si512(scol + o), X, 4), acc1);
    __m512 r = _mm512_mul_ps(va, _mm512_add_ps(acc0, acc1));
    if (A) r = _mm512_fmadd_ps(vA, _mm512_loadu_ps(A + i), r);
    if (Z) r = _mm512_fnmadd_ps(vZ, _mm512_loadu_ps(Z + i), r);
    if (nt) _mm512_stream_ps(Y + i, r); else _mm512_storeu_ps(Y + i, r);
  }
  if (nt) _mm_sfence();
  if (r1 > full) {
    int64_t t0 = r0 > full ? r0 : full;
    contiguous_column_f32(t0, r1, crow, col, val, X, Y, A, Z, alpha, a, z, 0);
  }
}
#else
int cheb_sell_available(void) { return 0; }
#endif
