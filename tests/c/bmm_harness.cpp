// Host harness for tests/test_batch_matmul.py: runs a model through the Arduino TFLM library's
// interpreter with tinyhar::OpResolver (tinyhar's BATCH_MATMUL plus library ops), via ctypes.
// Stands in for the library's Arduino glue (system_setup.cpp, peripherals/utility_arduino.cpp).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "peripherals/utility.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#pragma GCC diagnostic pop
#include "tinyhar_op_resolver.h"

namespace {

char g_log[8192];
size_t g_log_len = 0;
alignas(16) uint8_t g_arena[512 * 1024];

enum LibraryOps { kAdd = 1, kSoftmax = 2, kNoBatchMatMul = 256 };

enum RunStatus {
  kOk = 0,
  kBadModel = 1,
  kRegisterFailed = 2,
  kAllocateFailed = 3,
  kWrongSizes = 4,
  kInvokeFailed = 5,
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
  tinyhar::OpResolver<2> resolver;
  if ((ops & kAdd) && resolver.library().AddAdd() != kTfLiteOk) return kRegisterFailed;
  if ((ops & kSoftmax) && resolver.library().AddSoftmax() != kTfLiteOk) return kRegisterFailed;
  if (!(ops & kNoBatchMatMul) && resolver.AddBatchMatMul() != kTfLiteOk) return kRegisterFailed;
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return kAllocateFailed;
  const size_t in_bytes = InputBytes(interpreter);
  const size_t out_bytes = interpreter.output(0)->bytes;
  if (in_bytes * runs != input_bytes || out_bytes * runs != output_bytes) return kWrongSizes;
  for (int r = 0; r < runs; ++r) {
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      memcpy(t->data.raw, inputs, t->bytes);
      inputs += t->bytes;
    }
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

}  // extern "C"
