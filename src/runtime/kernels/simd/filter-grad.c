// Conv2DBackpropFilter as a cache-blocked wasm SIMD kernel (NHWC, dilation 1).
//
//   dw[i, j, c, o] += Σ_{n, y, x} in[n, y·sh + i − top, x·sw + j − left, c] · dy[n, y, x, o]
//
// Why not XNNPACK: as a GEMM this has a tiny output (kh·kw·C × O) and a reduction over every pixel of
// the batch (200k long for 256 images of 28x28). XNNPACK's GEMM keeps one 4x8 output tile in
// registers and streams the whole reduction for it, so each tile re-reads the batch from L3/memory.
// Here the batch is cut into chunks that fit L2, and every output tile sweeps the chunk before the
// next chunk is touched: the tensors are read from memory once, the tiles re-read them from L2.
//
// Build: scripts/build-wasm-kernels.sh (clang --target=wasm32 -msimd128). No libc, no stack use:
// every value lives in wasm locals, so the module needs no runtime.
#include <wasm_simd128.h>

#define LANE(v, k) wasm_i32x4_shuffle((v), (v), k, k, k, k)

typedef struct {
  int n, h, w, c;        // input
  int oh, ow, o;         // output gradient
  int kh, kw, sh, sw;    // filter, strides
  int top, left;         // padding before
  int chunk;             // images per L2 block
} Geometry;

// First output index y with 0 ≤ y·s + tap − pad (ceil), and one past the last with y·s + tap − pad < size.
static inline int first_valid(int tap, int pad, int s) {
  int d = pad - tap;
  return d <= 0 ? 0 : (d + s - 1) / s;
}
static inline int end_valid(int tap, int pad, int s, int size, int out) {
  int d = size - 1 + pad - tap;
  if (d < 0) return 0;
  int e = d / s + 1;
  return e < out ? e : out;
}

// Where a tile's sweep starts: the filter entries (i, j, cb.., ob..), and for image n and output row y the
// input pixel read by output column x0 and its output-gradient pixel.
static inline float* dw_at(const Geometry* g, float* dw, int i, int j, int cb, int ob) {
  return dw + ((i * g->kw + j) * g->c + cb) * g->o + ob;
}
static inline const float* in_at(const Geometry* g, const float* in, int n, int y, int i, int j, int x0, int cb) {
  return in + ((n * g->h + y * g->sh + i - g->top) * g->w + x0 * g->sw + j - g->left) * g->c + cb;
}
static inline const float* dy_at(const Geometry* g, const float* dy, int n, int y, int x0, int ob) {
  return dy + ((n * g->oh + y) * g->ow + x0) * g->o + ob;
}

// 4 input channels x 8 outputs: 8 accumulators, the 4 channels loaded as one vector and broadcast lane
// by lane (one shuffle each instead of a scalar load + splat).
static void tile4x8(const Geometry* g, const float* in, const float* dy, float* dw, int n0, int n1, int i, int j,
                    int y0, int y1, int x0, int x1, int cb, int ob) {
  float* out = dw_at(g, dw, i, j, cb, ob);
  const int o = g->o;
  v128_t a00 = wasm_v128_load(out), a01 = wasm_v128_load(out + 4);
  v128_t a10 = wasm_v128_load(out + o), a11 = wasm_v128_load(out + o + 4);
  v128_t a20 = wasm_v128_load(out + 2 * o), a21 = wasm_v128_load(out + 2 * o + 4);
  v128_t a30 = wasm_v128_load(out + 3 * o), a31 = wasm_v128_load(out + 3 * o + 4);
  const int xstep = g->sw * g->c;
  for (int n = n0; n < n1; n++) {
    for (int y = y0; y < y1; y++) {
      const float* xp = in_at(g, in, n, y, i, j, x0, cb);
      const float* dp = dy_at(g, dy, n, y, x0, ob);
      for (int x = x0; x < x1; x++) {
        const v128_t v = wasm_v128_load(xp);
        const v128_t d0 = wasm_v128_load(dp), d1 = wasm_v128_load(dp + 4);
        v128_t s = LANE(v, 0);
        a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(s, d0));
        a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(s, d1));
        s = LANE(v, 1);
        a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(s, d0));
        a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(s, d1));
        s = LANE(v, 2);
        a20 = wasm_f32x4_add(a20, wasm_f32x4_mul(s, d0));
        a21 = wasm_f32x4_add(a21, wasm_f32x4_mul(s, d1));
        s = LANE(v, 3);
        a30 = wasm_f32x4_add(a30, wasm_f32x4_mul(s, d0));
        a31 = wasm_f32x4_add(a31, wasm_f32x4_mul(s, d1));
        xp += xstep;
        dp += o;
      }
    }
  }
  wasm_v128_store(out, a00), wasm_v128_store(out + 4, a01);
  wasm_v128_store(out + o, a10), wasm_v128_store(out + o + 4, a11);
  wasm_v128_store(out + 2 * o, a20), wasm_v128_store(out + 2 * o + 4, a21);
  wasm_v128_store(out + 3 * o, a30), wasm_v128_store(out + 3 * o + 4, a31);
}

// One input channel x 8 outputs (channel counts that are not a multiple of 4, e.g. a grey stem).
static void tile1x8(const Geometry* g, const float* in, const float* dy, float* dw, int n0, int n1, int i, int j,
                    int y0, int y1, int x0, int x1, int cb, int ob) {
  float* out = dw_at(g, dw, i, j, cb, ob);
  const int o = g->o;
  v128_t a0 = wasm_v128_load(out), a1 = wasm_v128_load(out + 4);
  const int xstep = g->sw * g->c;
  for (int n = n0; n < n1; n++) {
    for (int y = y0; y < y1; y++) {
      const float* xp = in_at(g, in, n, y, i, j, x0, cb);
      const float* dp = dy_at(g, dy, n, y, x0, ob);
      for (int x = x0; x < x1; x++) {
        const v128_t s = wasm_v128_load32_splat(xp);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(s, wasm_v128_load(dp)));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(s, wasm_v128_load(dp + 4)));
        xp += xstep;
        dp += o;
      }
    }
  }
  wasm_v128_store(out, a0), wasm_v128_store(out + 4, a1);
}

// dw must be zeroed (or hold a partial sum to add to). Requires o % 8 == 0. Images [n_begin, n_end)
// only, so callers can split the batch between threads and add the partial filters.
__attribute__((export_name("filter_grad")))
void filter_grad(const Geometry* g, const float* in, const float* dy, float* dw, int n_begin, int n_end) {
  const int c4 = g->c & ~3;
  for (int n0 = n_begin; n0 < n_end; n0 += g->chunk) {
    const int n1 = n0 + g->chunk < n_end ? n0 + g->chunk : n_end;
    for (int i = 0; i < g->kh; i++) {
      const int y0 = first_valid(i, g->top, g->sh), y1 = end_valid(i, g->top, g->sh, g->h, g->oh);
      if (y0 >= y1) continue;
      for (int j = 0; j < g->kw; j++) {
        const int x0 = first_valid(j, g->left, g->sw), x1 = end_valid(j, g->left, g->sw, g->w, g->ow);
        if (x0 >= x1) continue;
        for (int ob = 0; ob < g->o; ob += 8) {
          int cb = 0;
          for (; cb < c4; cb += 4) tile4x8(g, in, dy, dw, n0, n1, i, j, y0, y1, x0, x1, cb, ob);
          for (; cb < g->c; cb++) tile1x8(g, in, dy, dw, n0, n1, i, j, y0, y1, x0, x1, cb, ob);
        }
      }
    }
  }
}
