// Kernel harness (tests/helpers/kernel_harness.py): runs a model through the Arduino TFLM library's
// interpreter with tinyhar::OpResolver (tinyhar's kernels plus library ops, chosen by bits), via
// ctypes on the host or from tests/c/kernel_qemu_main.c on the emulated Cortex-M4F, where a
// MicroProfilerInterface records each node's clock ticks. Stands in for the library's Arduino glue
// (system_setup.cpp, peripherals/utility_arduino.cpp).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "peripherals/utility.h"
#include "tensorflow/lite/kernels/internal/common.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#pragma GCC diagnostic pop
#include "tinyhar_op_resolver.h"
#include "tinyhar_requantize.h"

namespace {

char g_log[8192];
size_t g_log_len = 0;
alignas(16) uint8_t g_arena[512 * 1024];

// Library ops by bit; tinyhar's BATCH_MATMUL is registered unless kNoBatchMatMul, its other
// kernels by their bits (tests/helpers/kernel_harness.py names them).
enum Ops {
  kAdd = 1,
  kSoftmax = 2,
  kMean = 4,
  kMul = 8,
  kNoBatchMatMul = 256,
  kOwnSoftmax = 512,
  kOwnMean = 1024,
  kOwnAdd = 2048,
  kOwnMul = 4096,
};
constexpr int kMaxNodes = 64;

enum RunStatus {
  kOk = 0,
  kBadModel = 1,
  kRegisterFailed = 2,
  kAllocateFailed = 3,
  kWrongSizes = 4,
  kInvokeFailed = 5,
};

size_t g_arena_used = 0;

// Per-node clock ticks, summed over runs; the clock is set by the embedding program.
uint32_t (*g_clock)(void) = nullptr;
uint32_t g_clock_mask = 0xFFFFFFFFu;
uint32_t g_node_ticks[kMaxNodes];
const char* g_node_names[kMaxNodes];
int g_nodes = 0;

class Profiler : public tflite::MicroProfilerInterface {
 public:
  void StartRun() { next_ = 0; }
  uint32_t BeginEvent(const char* tag) override {
    const uint32_t node = next_++;
    if (node < static_cast<uint32_t>(kMaxNodes)) {
      g_node_names[node] = tag;
      start_[node] = g_clock != nullptr ? g_clock() : 0;
      if (static_cast<int>(node) >= g_nodes) g_nodes = static_cast<int>(node) + 1;
    }
    return node;
  }
  void EndEvent(uint32_t node) override {
    if (node >= static_cast<uint32_t>(kMaxNodes) || g_clock == nullptr) return;
    g_node_ticks[node] += (g_clock() - start_[node]) & g_clock_mask;
  }

 private:
  uint32_t next_ = 0;
  uint32_t start_[kMaxNodes] = {};
};

size_t InputBytes(tflite::MicroInterpreter& interpreter) {
  size_t total = 0;
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) total += interpreter.input(i)->bytes;
  return total;
}

}  // namespace

extern "C" void DebugLog(const char* s) {
  const size_t n = strlen(s);
  const size_t room = sizeof(g_log) - 1 - g_log_len;
  const size_t take = n < room ? n : room;
  memcpy(g_log + g_log_len, s, take);
  g_log_len += take;
  g_log[g_log_len] = '\0';
}

namespace peripherals {
uint32_t MicrosecondsCounter() { return 0; }
uint32_t MillisecondsCounter() { return 0; }
}  // namespace peripherals

extern "C" {

const char* bmm_log(void) { return g_log; }

// Bytes of the arena the last bmm_run's interpreter used (0 when it did not allocate).
size_t bmm_arena_used(void) { return g_arena_used; }

// The clock the profiler reads at each node's start and end; differences are taken modulo
// mask + 1 (a 24-bit SysTick: 0xFFFFFF).
void bmm_set_clock(uint32_t (*clock)(void), uint32_t mask) {
  g_clock = clock;
  g_clock_mask = mask;
}

// Nodes the last bmm_run invoked, and each one's op name and ticks summed over its runs.
int bmm_nodes(void) { return g_nodes; }
const char* bmm_node_name(int node) { return node >= 0 && node < g_nodes ? g_node_names[node] : ""; }
uint32_t bmm_node_ticks(int node) { return node >= 0 && node < g_nodes ? g_node_ticks[node] : 0; }

void bmm_clear_log(void) {
  g_log_len = 0;
  g_log[0] = '\0';
}

// Runs `runs` invocations of the 16-byte aligned flatbuffer `model`. `inputs` holds each run's
// input tensors back to back in the model's input order; `outputs` receives output 0 per run.
int bmm_run(const void* model_data, int ops, const int8_t* inputs, size_t input_bytes, int runs,
            int8_t* outputs, size_t output_bytes) {
  const tflite::Model* model = tflite::GetModel(model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return kBadModel;
  // When AllocateTensors stops at an op the resolver lacks, the library leaves the later nodes'
  // registration pointers unset, and ~MicroInterpreter calls their free() through whatever an
  // earlier run left in the arena. A zeroed arena makes them null.
  memset(g_arena, 0, sizeof(g_arena));
  memset(g_node_ticks, 0, sizeof(g_node_ticks));
  g_nodes = 0;
  g_arena_used = 0;
  tinyhar::OpResolver<4, 5> resolver;
  if ((ops & kAdd) && resolver.library().AddAdd() != kTfLiteOk) return kRegisterFailed;
  if ((ops & kSoftmax) && resolver.library().AddSoftmax() != kTfLiteOk) return kRegisterFailed;
  if ((ops & kMean) && resolver.library().AddMean() != kTfLiteOk) return kRegisterFailed;
  if ((ops & kMul) && resolver.library().AddMul() != kTfLiteOk) return kRegisterFailed;
  if (!(ops & kNoBatchMatMul) && resolver.AddBatchMatMul() != kTfLiteOk) return kRegisterFailed;
  if ((ops & kOwnSoftmax) &&
      resolver.AddOwn(tflite::BuiltinOperator_SOFTMAX, tinyhar::Register_SOFTMAX(),
                      tflite::ParseSoftmax) != kTfLiteOk) {
    return kRegisterFailed;
  }
  if ((ops & kOwnMean) && resolver.AddOwn(tflite::BuiltinOperator_MEAN, tinyhar::Register_MEAN(),
                                          tflite::ParseReducer) != kTfLiteOk) {
    return kRegisterFailed;
  }
  if ((ops & kOwnAdd) && resolver.AddOwn(tflite::BuiltinOperator_ADD, tinyhar::Register_ADD(),
                                         tflite::ParseAdd) != kTfLiteOk) {
    return kRegisterFailed;
  }
  if ((ops & kOwnMul) && resolver.AddOwn(tflite::BuiltinOperator_MUL, tinyhar::Register_MUL(),
                                         tflite::ParseMul) != kTfLiteOk) {
    return kRegisterFailed;
  }
  Profiler profiler;
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena), nullptr,
                                       &profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) return kAllocateFailed;
  g_arena_used = interpreter.arena_used_bytes();
  const size_t in_bytes = InputBytes(interpreter);
  const size_t out_bytes = interpreter.output(0)->bytes;
  if (in_bytes * runs != input_bytes || out_bytes * runs != output_bytes) return kWrongSizes;
  for (int r = 0; r < runs; ++r) {
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      memcpy(t->data.raw, inputs, t->bytes);
      inputs += t->bytes;
    }
    profiler.StartRun();
    if (interpreter.Invoke() != kTfLiteOk) return kInvokeFailed;
    memcpy(outputs, interpreter.output(0)->data.raw, out_bytes);
    outputs += out_bytes;
  }
  return kOk;
}

// What the resolver hands out, as numbers for the test (see FACTS in test_batch_matmul.py).
int bmm_resolver_facts(int* facts, int n) {
  if (n < 10) return -1;
  tinyhar::OpResolver<2> resolver;
  facts[0] = resolver.library().AddAdd();
  facts[1] = resolver.AddBatchMatMul();
  const TfLiteRegistration* bmm = resolver.FindOp(tflite::BuiltinOperator_BATCH_MATMUL);
  facts[2] = bmm != nullptr ? bmm->builtin_code : -1;
  facts[3] = bmm != nullptr && bmm->prepare != nullptr && bmm->invoke != nullptr;
  facts[4] = resolver.GetOpDataParser(tflite::BuiltinOperator_BATCH_MATMUL) ==
             &tflite::ParseBatchMatMul;
  const TfLiteRegistration* add = resolver.FindOp(tflite::BuiltinOperator_ADD);
  facts[5] = add != nullptr && add == resolver.library().FindOp(tflite::BuiltinOperator_ADD) &&
             add->builtin_code == tflite::BuiltinOperator_ADD &&
             resolver.GetOpDataParser(tflite::BuiltinOperator_ADD) == &tflite::ParseAdd;
  facts[6] = resolver.FindOp(tflite::BuiltinOperator_CONV_2D) == nullptr &&
             resolver.GetOpDataParser(tflite::BuiltinOperator_CONV_2D) == nullptr &&
             resolver.FindOp("TINYHAR_NONE") == nullptr;
  facts[7] = resolver.AddBatchMatMul();  // a second time: refused
  facts[8] = resolver.AddOwn(tflite::BuiltinOperator_GELU, tinyhar::Register_BATCH_MATMUL(),
                             tflite::ParseBatchMatMul);  // tOwnOps is 1: no room
  const tflite::MicroOpResolver& base = resolver;
  facts[9] = base.FindOp(tflite::BuiltinOperator_BATCH_MATMUL) == bmm;
  return 0;
}

// Inputs (of `n` pseudo-random ones from `seed`, half of them next to a rounding boundary) where
// tinyhar::Requantizer and the library's MultiplyByQuantizedMultiplier differ; `near_boundary`
// counts the inputs placed next to one.
int bmm_requantize_mismatches(int n, uint32_t seed, int* near_boundary) {
  uint32_t state = seed | 1u;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  };
  int mismatches = 0;
  *near_boundary = 0;
  for (int i = 0; i < n; ++i) {
    const uint32_t pick = next() % 8;
    const int32_t multiplier = pick == 0   ? 0
                               : pick == 1 ? (1 << 30)
                               : pick == 2 ? INT32_MAX
                                           : static_cast<int32_t>((1u << 30) | (next() >> 2));
    const int shift = static_cast<int>(next() % 37) - 31;  // -31 .. 5
    int32_t x = static_cast<int32_t>(next());
    if (shift > 0) x >>= shift + 1;  // the reference's x * 2^shift must not overflow
    if (i % 2 == 1 && multiplier > 0 && shift <= 0) {
      // high = k * 2^e + half (+ 0 or 1): x with (x * m + 2^30) >> 31 near it.
      const int e = -shift;
      const int64_t half = e > 0 ? (int64_t{1} << (e - 1)) - 1 + (next() % 3) : 0;
      const int64_t k = static_cast<int32_t>(next()) >> (e + 2);  // |high| < 2^29
      const int64_t high = (k << e) + half;
      const int64_t target = (high * (int64_t{1} << 31)) / multiplier;
      if (target > INT32_MIN && target < INT32_MAX) {
        x = static_cast<int32_t>(target + static_cast<int32_t>(next() % 5) - 2);
        ++*near_boundary;
      }
    }
    const tinyhar::Requantizer r = tinyhar::Requantizer::Make(multiplier, shift);
    if (r(x) != tflite::MultiplyByQuantizedMultiplier(x, multiplier, shift)) ++mismatches;
  }
  return mismatches;
}

// Inputs where the non-negative roundings of tinyhar_requantize.h (the softmax's) and gemmlowp's
// general ones differ: n pseudo-random (a, b) >= 0 and (x, e), half of them x on a tie.
int bmm_nonnegative_rounding_mismatches(int n, uint32_t seed) {
  uint32_t state = seed | 1u;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  };
  int mismatches = 0;
  for (int i = 0; i < n; ++i) {
    const int32_t a = static_cast<int32_t>(next() >> 1);
    const int32_t b = static_cast<int32_t>(next() >> (1 + next() % 31));
    if (tinyhar::DoublingHighMulNonNegative(a, b) !=
        static_cast<uint32_t>(gemmlowp::SaturatingRoundingDoublingHighMul(a, b))) {
      ++mismatches;
    }
    const int e = 1 + static_cast<int>(next() % 31);
    int32_t x = static_cast<int32_t>(next() >> 1);
    if (i % 2 == 1) {  // on or next to a tie: x mod 2^e = 2^(e - 1) + {-1, 0, 1}
      const uint32_t low = (1u << (e - 1)) + next() % 3 - 1;
      x = static_cast<int32_t>(((static_cast<uint32_t>(x) >> e) << e) | (low & ((1u << e) - 1)));
    }
    if (tinyhar::RoundingDivideByPOTNonNegative(static_cast<uint32_t>(x), e) !=
        static_cast<uint32_t>(gemmlowp::RoundingDivideByPOT(x, e))) {
      ++mismatches;
    }
  }
  return mismatches;
}

}  // extern "C"
