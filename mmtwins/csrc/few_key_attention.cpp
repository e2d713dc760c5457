// Softmax attention for queries that attend to at most 64 keys, on CPU in fp32.
//
// Every attention of Twins and DaViT at 224 x 224 has 49 keys: a 7 x 7 window, or a map
// sub-sampled to 7 x 7. PyTorch's CPU kernel of scaled_dot_product_attention splits the
// queries into blocks of 32 and calls a BLAS product twice per block and head: on these
// sizes it runs at 10 to 20 GFLOP/s, its time spent around products of 32 x 49 x 32.
// Here the keys and values of one head stay in L1 and in registers, the scores of four
// queries against all keys are held in registers, and the softmax runs on them in place.
//
// Build: mmtwins/setup.py (torch.utils.cpp_extension) compiles it into mmtwins._ext;
// mmtwins/models/layers/few_key_attention.py is its Python side and fallback.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>

namespace {

constexpr int kLanes = 16;
constexpr int64_t kMaxKeys = 64;
constexpr int64_t kQueryChunk = 64;  // queries per parallel task
constexpr int kRowBlock = 4;         // queries whose scores are in registers at once

// 16 floats; compiled to one AVX-512 register, two AVX2 ones, or plain code elsewhere.
typedef float vfloat __attribute__((vector_size(64)));
typedef int32_t vint __attribute__((vector_size(64)));

#define ALWAYS_INLINE inline __attribute__((always_inline))

ALWAYS_INLINE vfloat splat(float x) { return vfloat{} + x; }

ALWAYS_INLINE vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

ALWAYS_INLINE void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof(v)); }

ALWAYS_INLINE vfloat vmax(vfloat a, vfloat b) { return a > b ? a : b; }

// exp(x) for x <= 0 (scores minus their maximum): Cephes' expf polynomial after the
// reduction x = n ln2 + r, |r| <= ln2 / 2; within 2 ulp of std::exp.
ALWAYS_INLINE vfloat exp_nonpositive(vfloat x) {
  x = vmax(x, splat(-87.3f));  // exp(-87.3) is about the smallest normal float
  const vfloat round = splat(12582912.f);  // 1.5 * 2^23: adding it rounds to an integer
  const vfloat n = (x * 1.44269504088896341f + round) - round;
  const vfloat r = x - n * 0.693359375f + n * 2.12194440e-4f;
  vfloat p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const vint exponent = (__builtin_convertvector(n, vint) + 127) << 23;
  vfloat two_to_n;
  std::memcpy(&two_to_n, &exponent, sizeof(two_to_n));
  return p * two_to_n;
}

template <typename Op>
ALWAYS_INLINE float reduce(vfloat v, Op op) {
  v = op(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  v = op(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
  v = op(v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
  v = op(v, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
  return v[0];
}

// Strides of a (G1, G2, heads, T1, T2, D) view: groups of tokens (one window: G1 the
// batch and window row, G2 the window column), heads, tokens (T1 rows, T2 columns).
struct Operand {
  const float* data;
  int64_t group1, group2, head, token1, token2;

  const float* at(int64_t g1, int64_t g2, int64_t h) const {
    return data + g1 * group1 + g2 * group2 + h * head;
  }
};

// One head's keys, transposed and zero-padded to K * 16, and its values, contiguous.
template <int K, int D>
struct KeysValues {
  alignas(64) float keys_t[D][K * kLanes];
  alignas(64) float values[K * kLanes][D];
  vfloat last_valid;  // 1 for the real keys of the last 16, 0 for the padding
  int64_t count;

  void gather(const float* k, const Operand& ks, const float* v, const Operand& vs,
              int64_t rows, int64_t cols) {
    count = rows * cols;
    for (int64_t m = 0; m < K * kLanes; ++m) {
      const float* key = k + m / cols * ks.token1 + m % cols * ks.token2;
      for (int d = 0; d < D; ++d) keys_t[d][m] = m < count ? key[d] : 0.f;
    }
    for (int64_t m = 0; m < count; ++m)
      std::memcpy(values[m], v + m / cols * vs.token1 + m % cols * vs.token2,
                  D * sizeof(float));
    for (int i = 0; i < kLanes; ++i)
      last_valid[i] = (K - 1) * kLanes + i < count ? 1.f : 0.f;
  }
};

// Attention of R queries: scores, softmax, weighted sum of the values.
template <int K, int D, int R>
ALWAYS_INLINE void attend_rows(const KeysValues<K, D>& kv, const float* const* q,
                               float* const* out, float scale) {
  constexpr int DV = D / kLanes;
  vfloat scores[R][K];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < K; ++j) scores[r][j] = vfloat{};
  for (int d = 0; d < D; ++d) {
    vfloat keys[K];
    for (int j = 0; j < K; ++j) keys[j] = load(&kv.keys_t[d][j * kLanes]);
    for (int r = 0; r < R; ++r) {
      const float qd = q[r][d];
      for (int j = 0; j < K; ++j) scores[r][j] += qd * keys[j];
    }
  }
  alignas(64) float weights[R][K * kLanes];
  float inv_sum[R];
  for (int r = 0; r < R; ++r) {
    scores[r][K - 1] = kv.last_valid > 0.f ? scores[r][K - 1] : splat(-INFINITY);
    vfloat row_max = scores[r][0];
    for (int j = 1; j < K; ++j) row_max = vmax(row_max, scores[r][j]);
    const float max_score = reduce(row_max, vmax);
    vfloat sum = vfloat{};
    for (int j = 0; j < K; ++j) {
      vfloat e = exp_nonpositive((scores[r][j] - max_score) * scale);
      if (j == K - 1) e *= kv.last_valid;
      sum += e;
      store(&weights[r][j * kLanes], e);
    }
    inv_sum[r] = 1.f / reduce(sum, [](vfloat a, vfloat b) { return a + b; });
  }
  vfloat acc[R][DV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < DV; ++j) acc[r][j] = vfloat{};
  for (int64_t m = 0; m < kv.count; ++m) {
    vfloat values[DV];
    for (int j = 0; j < DV; ++j) values[j] = load(&kv.values[m][j * kLanes]);
    for (int r = 0; r < R; ++r) {
      const float w = weights[r][m];
      for (int j = 0; j < DV; ++j) acc[r][j] += w * values[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < DV; ++j) store(out[r] + j * kLanes, acc[r][j] * inv_sum[r]);
}

struct Problem {
  Operand q, k, v, out;
  int64_t groups2, heads;
  int64_t query_rows, query_cols, key_rows, key_cols;
  float scale;
};

// Asks for the D floats of each of `count` tokens of a T1 x T2 grid, starting at `first`.
template <int D>
ALWAYS_INLINE void prefetch_tokens(const float* base, int64_t stride1, int64_t stride2,
                                   int64_t cols, int64_t first, int64_t count) {
  for (int64_t n = first; n < first + count; ++n) {
    const char* token =
        reinterpret_cast<const char*>(base + n / cols * stride1 + n % cols * stride2);
    for (int line = 0; line < D * 4; line += 64) __builtin_prefetch(token + line);
  }
}

template <int K, int D>
ALWAYS_INLINE void run_tasks(const Problem& p, int64_t begin, int64_t end) {
  const int64_t num_queries = p.query_rows * p.query_cols;
  const int64_t num_keys = p.key_rows * p.key_cols;
  const int64_t chunks = (num_queries + kQueryChunk - 1) / kQueryChunk;
  // Task t: queries [chunk * kQueryChunk, ...) of head h of group (g1, g2).
  auto locate = [&](int64_t task, int64_t* g1, int64_t* g2, int64_t* h, int64_t* first,
                    int64_t* last) {
    const int64_t group = task / chunks, chunk = task % chunks;
    *h = group % p.heads;
    *g2 = group / p.heads % p.groups2;
    *g1 = group / p.heads / p.groups2;
    *first = chunk * kQueryChunk;
    *last = std::min(*first + kQueryChunk, num_queries);
  };
  KeysValues<K, D> kv;
  int64_t gathered = -1;
  for (int64_t task = begin; task < end; ++task) {
    int64_t g1, g2, h, first, last;
    locate(task, &g1, &g2, &h, &first, &last);
    if (task + 1 < end) {
      // The inputs are views into a large product's output, not in cache: fetch the
      // next task's while this one computes (memory latency otherwise stalls it).
      int64_t ng1, ng2, nh, nfirst, nlast;
      locate(task + 1, &ng1, &ng2, &nh, &nfirst, &nlast);
      prefetch_tokens<D>(p.q.at(ng1, ng2, nh), p.q.token1, p.q.token2, p.query_cols,
                         nfirst, nlast - nfirst);
      if (nfirst == 0) {
        prefetch_tokens<D>(p.k.at(ng1, ng2, nh), p.k.token1, p.k.token2, p.key_cols, 0,
                           num_keys);
        prefetch_tokens<D>(p.v.at(ng1, ng2, nh), p.v.token1, p.v.token2, p.key_cols, 0,
                           num_keys);
      }
    }
    const int64_t group = task / chunks;
    if (group != gathered) {
      kv.gather(p.k.at(g1, g2, h), p.k, p.v.at(g1, g2, h), p.v, p.key_rows, p.key_cols);
      gathered = group;
    }
    const float* q = p.q.at(g1, g2, h);
    float* out = const_cast<float*>(p.out.at(g1, g2, h));
    const float* q_rows[kRowBlock];
    float* out_rows[kRowBlock];
    int64_t n = first;
    while (n < last) {
      const int rows = last - n >= kRowBlock ? kRowBlock : 1;
      for (int r = 0; r < rows; ++r, ++n) {
        const int64_t row = n / p.query_cols, col = n % p.query_cols;
        q_rows[r] = q + row * p.q.token1 + col * p.q.token2;
        out_rows[r] = out + row * p.out.token1 + col * p.out.token2;
      }
      if (rows == kRowBlock)
        attend_rows<K, D, kRowBlock>(kv, q_rows, out_rows, p.scale);
      else
        attend_rows<K, D, 1>(kv, q_rows, out_rows, p.scale);
    }
  }
}

// The same code compiled for AVX-512 and for AVX2, chosen at run time.
#if defined(__x86_64__)
template <int K, int D>
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))) void run_tasks_avx512(
    const Problem& p, int64_t begin, int64_t end) {
  run_tasks<K, D>(p, begin, end);
}
template <int K, int D>
__attribute__((target("avx2,fma"))) void run_tasks_avx2(const Problem& p, int64_t begin,
                                                         int64_t end) {
  run_tasks<K, D>(p, begin, end);
}
#endif

template <int K, int D>
void run_tasks_dispatch(const Problem& p, int64_t begin, int64_t end) {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512) return run_tasks_avx512<K, D>(p, begin, end);
  if (avx2) return run_tasks_avx2<K, D>(p, begin, end);
#endif
  run_tasks<K, D>(p, begin, end);
}

using TaskFn = void (*)(const Problem&, int64_t, int64_t);

template <int D>
TaskFn task_fn(int64_t key_vectors) {
  switch (key_vectors) {
    case 1: return run_tasks_dispatch<1, D>;
    case 2: return run_tasks_dispatch<2, D>;
    case 3: return run_tasks_dispatch<3, D>;
    default: return run_tasks_dispatch<4, D>;
  }
}

void check_input(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 6,
              "few_key_attention: ", name, " must be a 6-D float32 CPU tensor, got ",
              t.scalar_type(), " ", t.sizes(), " on ", t.device());
  TORCH_CHECK(t.stride(5) == 1, "few_key_attention: the last dimension of ", name,
              " must be contiguous, got strides ", t.strides());
}

Operand operand(const torch::Tensor& t) {
  return {t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3),
          t.stride(4)};
}

}  // namespace

// q: (G1, G2, heads, T1, T2, D), k and v: (G1, G2, heads, S1, S2, D), views with any
// strides but a contiguous last dimension: each (G1, G2) group's T1 x T2 queries attend
// to its S1 x S2 <= 64 keys, head by head, D 32 or 64. Global attention over N tokens is
// G2 = T1 = S1 = 1; windows of a (B, H, W, 3C) qkv map are G1 = B * window rows,
// G2 = window columns, T1 = T2 = the window side. Returns (G1, T1, G2, T2, heads, D),
// contiguous: for windows the (B, H, W, C) map, heads merged.
torch::Tensor few_key_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, double scale) {
  check_input(q, "query");
  check_input(k, "key");
  check_input(v, "value");
  const int64_t groups1 = q.size(0), groups2 = q.size(1), heads = q.size(2);
  const int64_t head_dims = q.size(5), num_keys = k.size(3) * k.size(4);
  TORCH_CHECK(k.sizes() == v.sizes() && k.size(0) == groups1 && k.size(1) == groups2 &&
                  k.size(2) == heads && k.size(5) == head_dims,
              "few_key_attention: shapes do not match: query ", q.sizes(), ", key ",
              k.sizes(), ", value ", v.sizes());
  TORCH_CHECK(num_keys >= 1 && num_keys <= kMaxKeys, "few_key_attention: ", num_keys,
              " keys, supported 1 to ", kMaxKeys);
  TORCH_CHECK(head_dims == 32 || head_dims == 64,
              "few_key_attention: head dim ", head_dims, ", supported 32 and 64");
  auto out = torch::empty({groups1, q.size(3), groups2, q.size(4), heads, head_dims},
                          q.options());
  if (out.numel() == 0) return out;
  const Operand out_strides{out.data_ptr<float>(), out.stride(0), out.stride(2),
                            out.stride(4), out.stride(1), out.stride(3)};
  const Problem p{operand(q), operand(k), operand(v), out_strides, groups2, heads,
                  q.size(3), q.size(4), k.size(3), k.size(4), static_cast<float>(scale)};
  const int64_t key_vectors = (num_keys + kLanes - 1) / kLanes;
  const TaskFn fn = head_dims == 32 ? task_fn<32>(key_vectors) : task_fn<64>(key_vectors);
  const int64_t num_queries = q.size(3) * q.size(4);
  const int64_t tasks =
      groups1 * groups2 * heads * ((num_queries + kQueryChunk - 1) / kQueryChunk);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) { fn(p, begin, end); });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("few_key_attention", &few_key_attention,
        "Softmax attention of groups of queries to at most 64 keys each; see the source",
        pybind11::arg("query"), pybind11::arg("key"), pybind11::arg("value"),
        pybind11::arg("scale"));
}
