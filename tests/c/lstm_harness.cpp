// Harness for tests/firmware/test_kernel_lstm.py and benchmarks/lstm_kernel.py: runs a model through the
// Arduino TFLM library's interpreter with tinyhar's UNIDIRECTIONAL_SEQUENCE_LSTM kernel, or with
// the library's own, registered through tinyhar::OpResolver::AddOwn. Built for the host as a
// shared library (ctypes) and for the Cortex-M4F under QEMU (lstm_qemu_main.cpp). Stands in for
// the library's Arduino glue (system_setup.cpp, peripherals/utility_arduino.cpp).
#include "lstm_harness.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "peripherals/utility.h"
#include "tensorflow/lite/micro/kernels/micro_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#pragma GCC diagnostic pop
#include "tinyhar_op_resolver.h"

namespace {

char g_log[8192];
size_t g_log_len = 0;
alignas(16) uint8_t g_arena[512 * 1024];
size_t g_arena_used = 0;

// The kernel's invoke, timed by lstm_clock when it is set.
TfLiteStatus (*g_invoke)(TfLiteContext*, TfLiteNode*) = nullptr;
uint32_t g_op_ticks = 0;

TfLiteStatus TimedInvoke(TfLiteContext* context, TfLiteNode* node) {
  if (lstm_clock == nullptr) return g_invoke(context, node);
  const uint32_t start = lstm_clock();
  const TfLiteStatus status = g_invoke(context, node);
  g_op_ticks += (lstm_clock() - start) & 0xFFFFFFu;  // a 24-bit counter
  return status;
}

size_t InputBytes(tflite::MicroInterpreter& interpreter) {
  size_t total = 0;
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) total += interpreter.input(i)->bytes;
  return total;
}

}  // namespace

uint32_t (*lstm_clock)(void) = nullptr;

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

const char* lstm_log(void) { return g_log; }

void lstm_clear_log(void) {
  g_log_len = 0;
  g_log[0] = '\0';
}

size_t lstm_arena_used(void) { return g_arena_used; }

uint32_t lstm_op_ticks(void) { return g_op_ticks; }

int lstm_run(const void* model_data, int flags, const int8_t* inputs, size_t input_bytes,
             int runs, int8_t* outputs, size_t output_bytes) {
  const tflite::Model* model = tflite::GetModel(model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return kLstmBadModel;
  // A failed AllocateTensors leaves later nodes' registrations unset and ~MicroInterpreter
  // calls their free() through whatever an earlier run left in the arena: zero it.
  memset(g_arena, 0, sizeof(g_arena));
  g_arena_used = 0;
  g_op_ticks = 0;
  TfLiteRegistration lstm = (flags & kLstmLibraryKernel)
                                ? tflite::Register_UNIDIRECTIONAL_SEQUENCE_LSTM()
                                : tinyhar::Register_UNIDIRECTIONAL_SEQUENCE_LSTM();
  g_invoke = lstm.invoke;
  lstm.invoke = TimedInvoke;
  tinyhar::OpResolver<1> resolver;
  if (resolver.AddOwn(tflite::BuiltinOperator_UNIDIRECTIONAL_SEQUENCE_LSTM, lstm,
                      tflite::ParseUnidirectionalSequenceLSTM) != kTfLiteOk) {
    return kLstmRegisterFailed;
  }
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return kLstmAllocateFailed;
  g_arena_used = interpreter.arena_used_bytes();
  const size_t in_bytes = InputBytes(interpreter);
  const size_t out_bytes = interpreter.output(0)->bytes;
  if (in_bytes * runs != input_bytes || out_bytes * runs != output_bytes) return kLstmWrongSizes;
  for (int r = 0; r < runs; ++r) {
    if (!(flags & kLstmKeepState) && interpreter.Reset() != kTfLiteOk) {
      return kLstmInvokeFailed;
    }
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      memcpy(t->data.raw, inputs, t->bytes);
      inputs += t->bytes;
    }
    if (interpreter.Invoke() != kTfLiteOk) return kLstmInvokeFailed;
    memcpy(outputs, interpreter.output(0)->data.raw, out_bytes);
    outputs += out_bytes;
  }
  return kLstmOk;
}

}  // extern "C"
