// 2-D convolution, its input gradient and its filter gradient from oneDNN, on float32 tensors that
// live in the caller's memory (the tfjs wasm backend's heap): NHWC activations, [kh, kw, in, out]
// filters, as tfjs lays them out. oneDNN runs each in the layouts its fastest kernels want, reordering
// the operands in and the result out (bench/train-step --onednn; docs/BENCHMARKS.md).
//
// run(op, x, w, y, geometry): x, w, y are Float32Arrays (views of the heap) of exactly their tensors'
// sizes; geometry = [n, h, w, c, oh, ow, o, kh, kw, sh, sw, top, left, bottom, right]:
//   op 0: y = conv(x, w)           op 1: x = dconv/dx(dy = y, w)      op 2: w = dconv/dw(x, dy = y)
// Primitives are cached per thread by (op, geometry): oneDNN JIT-compiles each on creation.
//
// setConvPrecision("f32" | "bf16"), per thread: with bf16 each convolution reads its two inputs as
// bfloat16 (oneDNN's reorder rounds them on the way in) and writes its output in float32, accumulating
// in float32: mixed precision, for CPUs with AVX512-BF16 or AMX (refused elsewhere, where oneDNN would
// emulate it more slowly than float32).
//
// batchNorm(x, y, scale, shift, mean, variance, dims, epsilon) and batchNormBackward(x, dy, scale, mean,
// variance, dx, dscale, dshift, dims, epsilon): oneDNN's batch normalization in training mode over all
// axes but the channels, on the same NHWC tensors (dims = [n, h, w, c]; the caller folds another
// rank's leading axes into n). Forward writes y and the batch mean and biased variance; backward writes the gradients
// of x, scale and shift.
#include <node_api.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <cstring>
#include <unordered_map>

namespace {

using dnnl::memory;
using Geometry = std::array<int64_t, 15>;
enum { N, H, W, C, OH, OW, O, KH, KW, SH, SW, TOP, LEFT, BOTTOM, RIGHT };
enum Op { kForward = 0, kBackwardData = 1, kBackwardFilter = 2 };

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The layouts the caller's tensors are in: NHWC activations, [kh, kw, in, out] filters.
struct UserDescs {
  memory::desc x, w, y;
};

UserDescs userDescs(const Geometry& g) {
  return {memory::desc({g[N], g[C], g[H], g[W]}, memory::data_type::f32, memory::format_tag::nhwc),
          memory::desc({g[O], g[C], g[KH], g[KW]}, memory::data_type::f32, memory::format_tag::hwio),
          memory::desc({g[N], g[O], g[OH], g[OW]}, memory::data_type::f32, memory::format_tag::nhwc)};
}

// One cached call: the primitive, the layouts it wants (format "any": oneDNN's blocked layouts run its
// direct JIT kernels; on plain NHWC it takes a GEMM path, and a full-width ResNet-18 step trained 2.7x
// the wasm kernels' speed instead of 4.2x) and the reorders between those and the caller's.
struct Plan {
  dnnl::primitive conv;
  memory::desc want[3];                   // x, w, y as the primitive reads or writes them
  std::optional<dnnl::reorder> in[3];    // caller → wanted, for the two inputs
  std::optional<dnnl::reorder> out;      // wanted → caller, for the output
};

// Which of (x, w, y) each op writes; the other two it reads.
int outputSlot(int op) { return op == kForward ? 2 : op == kBackwardData ? 0 : 1; }

Plan plan(int op, const Geometry& g, bool bf16) {
  const UserDescs user = userDescs(g);
  // Inputs in bf16 when asked; the output always f32.
  auto any = [bf16](const memory::desc& d, bool input) {
    return memory::desc(d.dims(), input && bf16 ? memory::data_type::bf16 : memory::data_type::f32, memory::format_tag::any);
  };
  const int out = outputSlot(op);
  memory::desc x = any(user.x, out != 0), w = any(user.w, out != 1), y = any(user.y, out != 2);
  memory::dims strides{g[SH], g[SW]}, padL{g[TOP], g[LEFT]}, padR{g[BOTTOM], g[RIGHT]};
  auto algo = dnnl::algorithm::convolution_direct;
  // A backward op's forward hint has the data types of its operands: bf16 for y there too.
  dnnl::convolution_forward::primitive_desc forward(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, any(user.x, true), any(user.w, true),
                                      any(user.y, op != kForward), strides, padL, padR),
      cpuEngine());
  Plan p;
  if (op == kForward) {
    p.conv = dnnl::convolution_forward(forward);
    p.want[0] = forward.src_desc(), p.want[1] = forward.weights_desc(), p.want[2] = forward.dst_desc();
  } else if (op == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(algo, x, w, y, strides, padL, padR), cpuEngine(), forward);
    p.conv = dnnl::convolution_backward_data(pd);
    p.want[0] = pd.diff_src_desc(), p.want[1] = pd.weights_desc(), p.want[2] = pd.diff_dst_desc();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(algo, x, w, y, strides, padL, padR), cpuEngine(), forward);
    p.conv = dnnl::convolution_backward_weights(pd);
    p.want[0] = pd.src_desc(), p.want[1] = pd.diff_weights_desc(), p.want[2] = pd.diff_dst_desc();
  }
  const memory::desc* mine[3] = {&user.x, &user.w, &user.y};
  for (int i = 0; i < 3; i++) {
    if (p.want[i] == *mine[i]) continue;
    if (i == outputSlot(op))
      p.out = dnnl::reorder(dnnl::reorder::primitive_desc(cpuEngine(), p.want[i], cpuEngine(), *mine[i]));
    else
      p.in[i] = dnnl::reorder(dnnl::reorder::primitive_desc(cpuEngine(), *mine[i], cpuEngine(), p.want[i]));
  }
  return p;
}

// Scratch for the reordered tensors, one per slot, grown as needed and reused by every later call
// on this thread (calls on one thread do not overlap).
struct Scratch {
  void* data = nullptr;
  size_t bytes = 0;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  ~Scratch() { std::free(data); }
  void* get(size_t need) {
    if (need > bytes) {
      std::free(data);
      bytes = (need + 4095) / 4096 * 4096;
      data = std::aligned_alloc(64, bytes);
      if (!data) throw std::bad_alloc();
    }
    return data;
  }
};

// Plans a thread keeps at most. Each holds JIT code (about 140 KB); a server's micro-batches of 1 to
// --max-batch images make one plan per layer per batch size, so the cache is bounded and starts over when
// full (a plan is rebuilt in a few milliseconds; oneDNN's own primitive cache makes that cheaper still).
constexpr size_t kMaxPlans = 256;

// Batch-norm primitives by (backward?, n, h, w, c, epsilon's bits); they read and write the caller's
// layouts directly, so no reorders.
using BnKey = std::array<int64_t, 6>;

struct ThreadState {
  dnnl::stream stream{cpuEngine()};
  std::map<std::pair<int, Geometry>, Plan> plans;
  std::map<BnKey, dnnl::primitive> bnPlans;
  Scratch scratch[3];
  bool bf16 = false;  // convolutions' input precision (setConvPrecision); plans are made for it
};
// Freed when its thread ends (an inference worker that stops).
thread_local std::unique_ptr<ThreadState> state;

ThreadState& threadState() {
  if (!state) state = std::make_unique<ThreadState>();
  return *state;
}

void execute(int op, const Geometry& g, float* x, float* w, float* y) {
  threadState();
  auto key = std::make_pair(op, g);
  auto it = state->plans.find(key);
  if (it == state->plans.end()) {
    if (state->plans.size() >= kMaxPlans) state->plans.clear();
    it = state->plans.emplace(key, plan(op, g, state->bf16)).first;
  }
  Plan& p = it->second;
  const UserDescs user = userDescs(g);
  memory mine[3] = {memory(user.x, cpuEngine(), x), memory(user.w, cpuEngine(), w), memory(user.y, cpuEngine(), y)};
  memory used[3];
  for (int i = 0; i < 3; i++) {
    used[i] = p.want[i] == mine[i].get_desc() ? mine[i]
                                               : memory(p.want[i], cpuEngine(), state->scratch[i].get(p.want[i].get_size()));
    if (p.in[i]) p.in[i]->execute(state->stream, mine[i], used[i]);
  }
  if (op == kForward) {
    p.conv.execute(state->stream, {{DNNL_ARG_SRC, used[0]}, {DNNL_ARG_WEIGHTS, used[1]}, {DNNL_ARG_DST, used[2]}});
  } else if (op == kBackwardData) {
    p.conv.execute(state->stream, {{DNNL_ARG_DIFF_DST, used[2]}, {DNNL_ARG_WEIGHTS, used[1]}, {DNNL_ARG_DIFF_SRC, used[0]}});
  } else {
    p.conv.execute(state->stream, {{DNNL_ARG_SRC, used[0]}, {DNNL_ARG_DIFF_DST, used[2]}, {DNNL_ARG_DIFF_WEIGHTS, used[1]}});
  }
  const int o = outputSlot(op);
  if (p.out) p.out->execute(state->stream, used[o], mine[o]);
  state->stream.wait();
}

const auto kBnFlags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

// dims in oneDNN's order (n, c, h, w) over an NHWC buffer; the statistics, scale and shift are c floats.
memory::desc bnData(const std::array<int64_t, 4>& d) {
  return memory::desc({d[0], d[3], d[1], d[2]}, memory::data_type::f32, memory::format_tag::nhwc);
}
memory::desc bnChannels(int64_t c) { return memory::desc({c}, memory::data_type::f32, memory::format_tag::a); }

dnnl::primitive& bnPlan(bool backward, const std::array<int64_t, 4>& d, float epsilon) {
  ThreadState& s = threadState();
  uint32_t epsBits;
  std::memcpy(&epsBits, &epsilon, sizeof epsBits);
  BnKey key{backward, d[0], d[1], d[2], d[3], epsBits};
  auto it = s.bnPlans.find(key);
  if (it != s.bnPlans.end()) return it->second;
  if (s.bnPlans.size() >= kMaxPlans) s.bnPlans.clear();
  dnnl::batch_normalization_forward::primitive_desc forward(
      dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, bnData(d), epsilon, kBnFlags), cpuEngine());
  dnnl::primitive p;
  if (backward) {
    p = dnnl::batch_normalization_backward(dnnl::batch_normalization_backward::primitive_desc(
        dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, bnData(d), bnData(d), epsilon, kBnFlags), cpuEngine(), forward));
  } else {
    p = dnnl::batch_normalization_forward(forward);
  }
  return s.bnPlans.emplace(key, p).first->second;
}

// Runs one batch norm; args by DNNL_ARG_* id, each a data-sized buffer or a c-float one.
void bnExecute(bool backward, const std::array<int64_t, 4>& d, float epsilon, std::initializer_list<std::pair<int, float*>> args) {
  dnnl::primitive& p = bnPlan(backward, d, epsilon);
  std::unordered_map<int, memory> mem;
  for (auto [id, ptr] : args) {
    bool data = id == DNNL_ARG_SRC || id == DNNL_ARG_DST || id == DNNL_ARG_DIFF_SRC || id == DNNL_ARG_DIFF_DST;
    mem.emplace(id, memory(data ? bnData(d) : bnChannels(d[3]), cpuEngine(), ptr));
  }
  ThreadState& s = threadState();
  p.execute(s.stream, mem);
  s.stream.wait();
}

napi_value fail(napi_env env, const std::string& message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

bool toInt64(napi_env env, napi_value v, int64_t* out) { return napi_get_value_int64(env, v, out) == napi_ok; }

// A Float32Array's data, checked to hold exactly `expected` elements.
float* floats(napi_env env, napi_value v, int64_t expected, const char* name) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!isTyped || napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float32_array) {
    fail(env, std::string(name) + " must be a Float32Array");
    return nullptr;
  }
  if (static_cast<int64_t>(length) != expected) {
    fail(env, std::string(name) + " has " + std::to_string(length) + " elements, the geometry needs " +
                  std::to_string(expected));
    return nullptr;
  }
  return static_cast<float*>(data);
}

// The product of some geometry entries, false on int64 overflow.
bool product(const Geometry& g, std::initializer_list<int> which, int64_t* out) {
  int64_t p = 1;
  for (int i : which)
    if (__builtin_mul_overflow(p, g[i], &p)) return false;
  *out = p;
  return true;
}

// Runs f; C++ exceptions (oneDNN's, bad_alloc) become JS errors: they must not cross into Node
// (std::terminate).
template <typename F>
napi_value guarded(napi_env env, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    return fail(env, std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return fail(env, std::string("dnnl-conv: ") + e.what());
  }
  return nullptr;
}

// The call's n arguments into argv; false (a JS error naming `usage`) for another count.
bool callArgs(napi_env env, napi_callback_info info, size_t n, napi_value* argv, const char* usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc == n) return true;
  fail(env, std::string(usage) + " takes " + std::to_string(n) + " arguments");
  return false;
}

napi_value Run(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!callArgs(env, info, 5, argv, "run(op, x, w, y, geometry)")) return nullptr;
  int64_t op;
  if (!toInt64(env, argv[0], &op) || op < kForward || op > kBackwardFilter) return fail(env, "op must be 0, 1 or 2");
  Geometry g;
  uint32_t geomLength = 0;
  bool isArray = false;
  napi_is_array(env, argv[4], &isArray);
  if (!isArray || napi_get_array_length(env, argv[4], &geomLength) != napi_ok || geomLength != g.size())
    return fail(env, "geometry must be an array of 15 integers");
  for (uint32_t i = 0; i < geomLength; i++) {
    napi_value e;
    napi_get_element(env, argv[4], i, &e);
    if (!toInt64(env, e, &g[i])) return fail(env, "geometry must be an array of 15 integers");
  }
  // oneDNN keeps dims, strides and pads as int; larger values would be narrowed.
  for (int i : {N, H, W, C, OH, OW, O, KH, KW, SH, SW})
    if (g[i] < 1 || g[i] > INT32_MAX) return fail(env, "geometry sizes and strides must be positive 32-bit integers");
  for (int i : {TOP, LEFT, BOTTOM, RIGHT})
    if (g[i] < 0 || g[i] > INT32_MAX) return fail(env, "geometry pads must be non-negative 32-bit integers");
  // Each array must hold exactly its tensor: the addon reads and writes through raw pointers.
  int64_t sizes[3];
  if (!product(g, {N, H, W, C}, &sizes[0]) || !product(g, {KH, KW, C, O}, &sizes[1]) || !product(g, {N, OH, OW, O}, &sizes[2]))
    return fail(env, "geometry too large");
  float* x = floats(env, argv[1], sizes[0], "x");
  if (!x) return nullptr;
  float* w = floats(env, argv[2], sizes[1], "w");
  if (!w) return nullptr;
  float* y = floats(env, argv[3], sizes[2], "y");
  if (!y) return nullptr;
  return guarded(env, [&] { execute(static_cast<int>(op), g, x, w, y); });
}

// Batch-norm dims [n, h, w, c]: positive 32-bit integers whose product fits int64; epsilon in (0, 1].
bool bnShape(napi_env env, napi_value dimsValue, napi_value epsValue, std::array<int64_t, 4>* dims, int64_t* size, float* epsilon) {
  bool isArray = false;
  uint32_t length = 0;
  napi_is_array(env, dimsValue, &isArray);
  if (!isArray || napi_get_array_length(env, dimsValue, &length) != napi_ok || length != 4) {
    fail(env, "dims must be an array of 4 integers [n, h, w, c]");
    return false;
  }
  int64_t p = 1;
  for (uint32_t i = 0; i < 4; i++) {
    napi_value e;
    napi_get_element(env, dimsValue, i, &e);
    double v = 0;
    if (napi_get_value_double(env, e, &v) != napi_ok || !(v >= 1 && v <= INT32_MAX) || v != static_cast<double>(static_cast<int64_t>(v))) {
      fail(env, "dims must be positive 32-bit integers");
      return false;
    }
    (*dims)[i] = static_cast<int64_t>(v);
    if (__builtin_mul_overflow(p, (*dims)[i], &p)) {
      fail(env, "dims too large");
      return false;
    }
  }
  *size = p;
  double eps = 0;
  if (napi_get_value_double(env, epsValue, &eps) != napi_ok || !(static_cast<float>(eps) > 0) || eps > 1) {
    fail(env, "epsilon must be a number in (0, 1]");
    return false;
  }
  *epsilon = static_cast<float>(eps);
  return true;
}

// argv[i] as a Float32Array of specs[i]'s size, into out[i].
bool bnArrays(napi_env env, napi_value* argv, std::initializer_list<std::pair<const char*, int64_t>> specs, float** out) {
  int i = 0;
  for (auto [name, size] : specs) {
    if (!(out[i] = floats(env, argv[i], size, name))) return false;
    i++;
  }
  return true;
}

// batchNorm(x, y, scale, shift, mean, variance, dims, epsilon)
napi_value BatchNorm(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!callArgs(env, info, 8, argv, "batchNorm(x, y, scale, shift, mean, variance, dims, epsilon)")) return nullptr;
  std::array<int64_t, 4> d;
  int64_t size;
  float epsilon;
  if (!bnShape(env, argv[6], argv[7], &d, &size, &epsilon)) return nullptr;
  float* a[6];
  if (!bnArrays(env, argv, {{"x", size}, {"y", size}, {"scale", d[3]}, {"shift", d[3]}, {"mean", d[3]}, {"variance", d[3]}}, a))
    return nullptr;
  return guarded(env, [&] {
    bnExecute(false, d, epsilon, {{DNNL_ARG_SRC, a[0]}, {DNNL_ARG_DST, a[1]}, {DNNL_ARG_SCALE, a[2]}, {DNNL_ARG_SHIFT, a[3]},
                                  {DNNL_ARG_MEAN, a[4]}, {DNNL_ARG_VARIANCE, a[5]}});
  });
}

// batchNormBackward(x, dy, scale, mean, variance, dx, dscale, dshift, dims, epsilon)
napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!callArgs(env, info, 10, argv, "batchNormBackward(x, dy, scale, mean, variance, dx, dscale, dshift, dims, epsilon)")) return nullptr;
  std::array<int64_t, 4> d;
  int64_t size;
  float epsilon;
  if (!bnShape(env, argv[8], argv[9], &d, &size, &epsilon)) return nullptr;
  float* a[8];
  if (!bnArrays(env, argv, {{"x", size}, {"dy", size}, {"scale", d[3]}, {"mean", d[3]}, {"variance", d[3]}, {"dx", size},
                            {"dscale", d[3]}, {"dshift", d[3]}}, a))
    return nullptr;
  return guarded(env, [&] {
    // oneDNN 2.6 wants a shift argument here too, though β does not enter any gradient: any c floats
    // that are not an output do (the mean's).
    bnExecute(true, d, epsilon, {{DNNL_ARG_SRC, a[0]}, {DNNL_ARG_DIFF_DST, a[1]}, {DNNL_ARG_SCALE, a[2]}, {DNNL_ARG_SHIFT, a[3]}, {DNNL_ARG_MEAN, a[3]},
                                 {DNNL_ARG_VARIANCE, a[4]}, {DNNL_ARG_DIFF_SRC, a[5]}, {DNNL_ARG_DIFF_SCALE, a[6]},
                                 {DNNL_ARG_DIFF_SHIFT, a[7]}});
  });
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int64_t n = 0;
  if (argc != 1 || !toInt64(env, argv[0], &n) || n < 1) return fail(env, "setThreads(n) takes a positive integer");
  omp_set_num_threads(static_cast<int>(n));  // this thread's OpenMP team size for later calls
  return nullptr;
}

// setConvPrecision("f32" | "bf16") for this thread's later convolutions.
napi_value SetConvPrecision(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char name[8] = {0};
  size_t length = 0;
  if (argc != 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok ||
      (std::strcmp(name, "f32") != 0 && std::strcmp(name, "bf16") != 0))
    return fail(env, "setConvPrecision(name) takes 'f32' or 'bf16'");
  const bool bf16 = std::strcmp(name, "bf16") == 0;
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if (bf16 && (isa & need) != need)
    return fail(env, "bf16 convolutions need a CPU with AVX512-BF16 or AMX; oneDNN would only emulate them here");
  ThreadState& s = threadState();
  if (s.bf16 != bf16) s.plans.clear();
  s.bf16 = bf16;
  return nullptr;
}

napi_value Version(napi_env env, napi_callback_info) {
  const dnnl_version_t* v = dnnl_version();
  std::string s = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, BatchNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormBackward", nullptr, BatchNormBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setConvPrecision", nullptr, SetConvPrecision, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
