/* CPU kernels of partial-sky HEALPix max pooling (deepsphere_gen/nn/_pool_native.py), batches
 * [b0, b1) each, compiled at first use (C, -O3 -march=native: the channel loops vectorise).
 *
 * x (B, P, C) contiguous; groups (Q, f): for each parent q the positions in x's pixel axis of its
 * f = 4**p children (in NESTED order); y, arg (B, Q, C) contiguous.
 *
 * pool_max_forward:  y[b, q, c] = max_j x[b, groups[q, j], c], arg = the first j that attains it
 *                    (NaN counts as the largest value and a later NaN takes over the argmax, as in
 *                    torch's CPU max_pool2d): the gather of the kept
 *                    children, the max and the argmax in one pass over the children.  arg is an
 *                    integer as wide as T (int32 / int64): the channel loops then vectorise (a
 *                    uint8 arg left them scalar: 32 x 4,762 x 16 -> 1,131 pixels 8.9 -> 0.9 ms).
 * pool_max_backward: gx[b, groups[q, j], c] = 0 + g[b, q, c] where j = arg[b, q, c], else 0, and
 *                    0 on the ``dropped`` pixels (those of incomplete parents): every value of
 *                    gx (B, P, C) written once, no zero fill first.  "0 + g" turns -0 into +0, as
 *                    the reference (the max pooling's and the gather's backward add the gradient
 *                    to zeros) does: the same bits.
 */
#include <stdint.h>
#include <string.h>

#define POOL_KERNELS(T, I, SUF)                                                                          \
  void pool_max_forward_##SUF(int64_t b0, int64_t b1, int64_t P, int64_t C, int64_t Q, int64_t f,     \
                              const int64_t* groups, const T* x, T* y, I* arg) {                \
    for (int64_t b = b0; b < b1; ++b)                                                                 \
      for (int64_t q = 0; q < Q; ++q) {                                                               \
        const int64_t* g = groups + q * f;                                                            \
        const T* restrict a0 = x + (b * P + g[0]) * C;                                                \
        T* restrict yo = y + (b * Q + q) * C;                                                         \
        I* restrict ao = arg + (b * Q + q) * C;                                                 \
        for (int64_t c = 0; c < C; ++c) {                                                             \
          yo[c] = a0[c];                                                                              \
          ao[c] = 0;                                                                                  \
        }                                                                                             \
        for (int64_t j = 1; j < f; ++j) {                                                             \
          const T* restrict aj = x + (b * P + g[j]) * C;                                              \
          for (int64_t c = 0; c < C; ++c) {                                                           \
            T v = aj[c], m = yo[c];                                                                   \
            int take = (v > m) | (v != v);                                                            \
            yo[c] = take ? v : m;                                                                     \
            ao[c] = take ? (I)j : ao[c];                                                        \
          }                                                                                           \
        }                                                                                             \
      }                                                                                               \
  }                                                                                                   \
  void pool_max_backward_##SUF(int64_t b0, int64_t b1, int64_t P, int64_t C, int64_t Q, int64_t f,    \
                               const int64_t* groups, const I* arg, const T* g, int64_t ndrop, \
                               const int64_t* dropped, T* gx) {                                       \
    for (int64_t b = b0; b < b1; ++b) {                                                               \
      for (int64_t q = 0; q < Q; ++q) {                                                               \
        const T* restrict gq = g + (b * Q + q) * C;                                                   \
        const I* restrict aq = arg + (b * Q + q) * C;                                           \
        for (int64_t j = 0; j < f; ++j) {                                                             \
          T* restrict row = gx + (b * P + groups[q * f + j]) * C;                                     \
          for (int64_t c = 0; c < C; ++c) row[c] = aq[c] == j ? (T)0 + gq[c] : (T)0;                  \
        }                                                                                             \
      }                                                                                               \
      for (int64_t d = 0; d < ndrop; ++d) memset(gx + (b * P + dropped[d]) * C, 0, (size_t)C * sizeof(T)); \
    }                                                                                                 \
  }

POOL_KERNELS(float, int32_t, f32)
POOL_KERNELS(double, int64_t, f64)
