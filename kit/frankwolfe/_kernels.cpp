// Fused CPU kernels for the Frank-Wolfe vertices whose torch form needs many passes or a full top-k.
// Built on first use by kit/frankwolfe/kernels.py (g++, no torch headers) and called through ctypes
// on contiguous float32 tensors; every function has a pure-torch twin that the tests compare against.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

namespace {

const int64_t kSample = 8192;     // sampled entries used to bracket the k-th largest
const int64_t kExactBelow = 16384;  // below this many entries a plain selection is as fast

// four-lane vectors (GCC/Clang vector extensions): portable SIMD for the passes the compiler
// does not vectorize by itself (max reductions, counts, rare stores)
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));

inline vf load_abs(const float* p) {
    vi bits;
    std::memcpy(&bits, p, sizeof bits);
    bits &= 0x7fffffff;
    vf v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

inline bool any(vi m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

const int64_t kParallelFrom = 65536;  // entries: below this, threads cost more than they save

// sum of lane(i) (four entries i..i+3) and of tail(i) over the last < 4 entries of each block:
// float lanes within blocks of 4096 entries, double across blocks (accurate for any n). Blocks may
// run on several OpenMP threads (torch's own runtime); the partial sums are added in block order,
// so the result does not depend on the number of threads.
template <class Lanes, class Tail>
double blocked_sum(int64_t n, Lanes lane, Tail tail) {
    const int64_t block = 4096, blocks = (n + block - 1) / block;
    std::vector<double> partial(size_t(blocks > 0 ? blocks : 1), 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
    for (int64_t b = 0; b < blocks; ++b) {
        int64_t start = b * block, end = std::min(n, start + block), i = start;
        vf acc = {0, 0, 0, 0};
        for (; i + 4 <= end; i += 4) acc += lane(i);
        double part = double(acc[0]) + acc[1] + acc[2] + acc[3];
        for (; i < end; ++i) part += tail(i);
        partial[size_t(b)] = part;
    }
    double total = 0.0;
    for (double part : partial) total += part;
    return total;
}

// index of the first entry of largest |x|, or -1 when every entry is 0
int64_t argmax_abs(const float* x, int64_t n) {
    const int64_t block = 1024, blocks = (n + block - 1) / block;  // maxima per block, then one block scanned
    std::vector<float> peak(size_t(blocks > 0 ? blocks : 1), 0.0f);
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
    for (int64_t b = 0; b < blocks; ++b) {
        int64_t start = b * block, end = std::min(n, start + block), i = start;
        vf acc = {0, 0, 0, 0};
        for (; i + 4 <= end; i += 4) {
            vf a = load_abs(x + i);
            acc = a > acc ? a : acc;
        }
        float m = std::max(std::max(acc[0], acc[1]), std::max(acc[2], acc[3]));
        for (; i < end; ++i) m = std::max(m, std::fabs(x[i]));
        peak[size_t(b)] = m;
    }
    float best = 0.0f;
    int64_t best_block = -1;
    for (int64_t b = 0; b < blocks; ++b)
        if (peak[size_t(b)] > best) {
            best = peak[size_t(b)];
            best_block = b;
        }
    if (best_block < 0) return -1;
    for (int64_t i = best_block * block;; ++i)
        if (std::fabs(x[i]) == best) return i;
}

// out = 0, on several threads for large n
void zero(float* out, int64_t n) {
    const int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
    for (int64_t start = 0; start < n; start += chunk)
        std::memset(out + start, 0, sizeof(float) * size_t(std::min(chunk, n - start)));
}

int64_t coprime_stride(int64_t n, int64_t target) {
    // not aligned with rows or columns: the sample does not keep hitting the same input pixels
    int64_t s = std::max<int64_t>(1, target);
    while (std::gcd(s, n) != 1) ++s;
    return s;
}

std::vector<float>& scratch(size_t size) {
    thread_local std::vector<float> work;  // reused: a fresh large buffer per call costs page faults
    if (work.size() < size) work.resize(size);
    return work;
}

// the k-th largest |x| (k in [1, n]), how many entries are strictly larger and how many equal it
float kth_largest_abs(const float* x, int64_t n, int64_t k, int64_t* n_greater, int64_t* n_equal) {
    if (n >= kExactBelow) {
        int64_t stride = coprime_stride(n, n / kSample);
        int64_t m = (n + stride - 1) / stride;
        double expected = double(k) * m / n;
        double spread = 3.5 * std::sqrt(expected * (1.0 - double(k) / n) + 1.0) + 2.0;  // ~3.5 binomial sd
        int64_t lo_rank = std::min<int64_t>(m - 1, int64_t(std::ceil(expected + spread)));
        int64_t hi_rank = int64_t(std::floor(expected - spread));
        int64_t cap = std::min<int64_t>(n, 8 * (lo_rank - std::max<int64_t>(hi_rank, 0) + 1) * stride + 4096);
        std::vector<float>& work = scratch(size_t(m + cap));
        float* sample = work.data();
        float* band = sample + m;
        for (int64_t i = 0; i < m; ++i) sample[i] = std::fabs(x[i * stride]);
        std::nth_element(sample, sample + lo_rank, sample + m, std::greater<float>());
        float lower = sample[lo_rank];
        float upper = INFINITY;
        if (hi_rank >= 0) {
            std::nth_element(sample, sample + hi_rank, sample + lo_rank, std::greater<float>());
            upper = sample[hi_rank];
        }
        // one pass: entries above the bracket are surely in the top k; only the band is ranked.
        // Blocks of 16 are tested with vector compares; the few holding band entries are copied.
        int64_t above = 0, size = 0;
        bool overflow = false;
        const vf lo = {lower, lower, lower, lower}, up = {upper, upper, upper, upper};
        vi above_acc = {0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            vi hit = {0, 0, 0, 0};
            for (int j = 0; j < 16; j += 4) {
                vf a = load_abs(x + i + j);
                above_acc -= a > up;  // lanes hold at most n / 4 < 2^31 counts for n < 2^33
                hit |= (a >= lo) & (a <= up);
            }
            if (any(hit))
                for (int j = 0; j < 16; ++j) {
                    float a = std::fabs(x[i + j]);
                    if (a >= lower && a <= upper) {
                        if (size < cap) band[size] = a; else overflow = true;
                        ++size;
                    }
                }
        }
        above = above_acc[0] + above_acc[1] + above_acc[2] + above_acc[3];
        for (; i < n; ++i) {
            float a = std::fabs(x[i]);
            above += a > upper;
            if (a >= lower && a <= upper) {
                if (size < cap) band[size] = a; else overflow = true;
                ++size;
            }
        }
        int64_t need = k - above;
        if (!overflow && need >= 1 && need <= size) {
            std::nth_element(band, band + (need - 1), band + size, std::greater<float>());
            float tau = band[need - 1];
            int64_t greater = above, equal = 0;
            for (int64_t j = 0; j < size; ++j) {
                greater += band[j] > tau;
                equal += band[j] == tau;
            }
            *n_greater = greater;
            *n_equal = equal;
            return tau;
        }
        // the sample missed (rare): fall through to the exact selection
    }
    std::vector<float>& work = scratch(size_t(n));
    float* a = work.data();
    for (int64_t i = 0; i < n; ++i) a[i] = std::fabs(x[i]);
    std::nth_element(a, a + (k - 1), a + n, std::greater<float>());
    float tau = a[k - 1];
    int64_t greater = 0, equal = 0;
    for (int64_t i = 0; i < n; ++i) {
        greater += a[i] > tau;
        equal += a[i] == tau;
    }
    *n_greater = greater;
    *n_equal = equal;
    return tau;
}

}  // namespace

extern "C" {

// Every entry point checks its sizes (defence in depth: the Python callers check them first) and
// returns kBadSize without touching memory when they do not fit.
constexpr int64_t kBadSize = -2;

// L1-ball vertex: out = -radius * sign(x_i) e_i at the first i of largest |x_i| (0 if x = 0);
// returns that i (-1 for x = 0)
int64_t kit_l1_vertex_f32(const float* x, int64_t n, float radius, float* out, int64_t n_out) {
    if (n < 1 || n_out != n) return kBadSize;
    zero(out, n);
    int64_t i = argmax_abs(x, n);
    if (i >= 0) out[i] = x[i] > 0 ? -radius : radius;
    return i;
}

// L2-ball vertex: out = -radius * x / ||x||_2 (0 if ||x|| <= 1e-12)
int64_t kit_l2_vertex_f32(const float* x, int64_t n, float radius, float* out, int64_t n_out) {
    if (n < 1 || n_out != n) return kBadSize;
    double sq = blocked_sum(n, [&](int64_t i) { vf a = load(x + i); return a * a; },
                            [&](int64_t i) { return double(x[i]) * x[i]; });
    double norm = std::sqrt(sq);
    const float scale = norm <= 1e-12 ? 0.0f : float(-radius / norm);
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
    return 0;
}

// L-inf-ball vertex: out = -radius * sign(x), with sign(0) = 0 so dead inputs do not drift
int64_t kit_linf_vertex_f32(const float* x, int64_t n, float radius, float* out, int64_t n_out) {
    if (n < 1 || n_out != n) return kBadSize;
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0 ? -radius : (x[i] < 0 ? radius : 0.0f);
    return 0;
}

// Top-k vertex, exactly k entries (ties at the threshold: the first in memory order).
// mode 0, k-sparse polytope: out_i = -radius * sign(x_i) on the top k, 0 elsewhere.
// mode 1, k-support ball:    out_i = -radius * x_i / ||x_topk||_2 on the top k (0 if x_topk = 0).
int64_t kit_topk_vertex_f32(const float* x, int64_t n, int64_t k, float radius, int mode, float* out,
                            int64_t n_out) {
    if (n < 1 || n_out != n || k < 1 || k > n || (mode != 0 && mode != 1)) return kBadSize;
    int64_t greater = 0, equal = 0;
    float tau = kth_largest_abs(x, n, k, &greater, &equal);
    // usually exactly k entries reach tau; at tau = 0 the extra ones are zeros and contribute 0
    bool inclusive = greater + equal == k || tau == 0.0f;
    const vf t = {tau, tau, tau, tau}, none = {0, 0, 0, 0}, neg = {-radius, -radius, -radius, -radius};
    double sum_sq = blocked_sum(
        n,
        [&](int64_t i) {
            vf v = load(x + i), a = load_abs(x + i);
            vi take = inclusive ? (a >= t) : (a > t);
            vf kept = take ? v : none;
            store(out + i, mode == 0 ? (kept > none ? neg : (kept < none ? -neg : none)) : kept);
            return kept * kept;
        },
        [&](int64_t i) {
            float a = std::fabs(x[i]);
            float kept = (inclusive ? a >= tau : a > tau) ? x[i] : 0.0f;
            out[i] = mode == 0 ? (kept > 0 ? -radius : (kept < 0 ? radius : 0.0f)) : kept;
            return double(kept) * kept;
        });
    if (!inclusive)  // genuine ties at tau > 0: the first ones in memory order complete the k
        for (int64_t j = 0, ties = k - greater; j < n && ties > 0; ++j)
            if (std::fabs(x[j]) == tau) {
                out[j] = mode == 0 ? (x[j] > 0 ? -radius : radius) : x[j];
                sum_sq += double(x[j]) * x[j];
                --ties;
            }
    if (mode == 1) {
        double norm = std::sqrt(double(sum_sq));
        const float scale = norm <= 1e-12 ? 0.0f : float(-radius / norm);
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
        for (int64_t j = 0; j < n; ++j) out[j] *= scale;
    }
    return 0;
}

// Momentum step m <- m + rho (g - m); returns ||m||^2 of the result (gradient rescaling needs it),
// or -1 (a squared norm never is) when the sizes do not fit
double kit_momentum_f32(float* m, const float* g, float rho, int64_t n, int64_t n_g) {
    if (n < 0 || n_g != n) return -1.0;
    const vf r = {rho, rho, rho, rho};
    return blocked_sum(
        n,
        [&](int64_t i) {
            vf a = load(m + i);
            a += r * (load(g + i) - a);
            store(m + i, a);
            return a * a;
        },
        [&](int64_t i) {
            m[i] += rho * (g[i] - m[i]);
            return double(m[i]) * m[i];
        });
}

// ||theta - v||^2, the Frank-Wolfe gap direction's squared length (-1 when the sizes do not fit)
double kit_gap_f32(const float* theta, const float* v, int64_t n, int64_t n_v) {
    if (n < 0 || n_v != n) return -1.0;
    return blocked_sum(
        n, [&](int64_t i) { vf d = load(theta + i) - load(v + i); return d * d; },
        [&](int64_t i) { double d = double(theta[i]) - v[i]; return d * d; });
}

}  // extern "C"
