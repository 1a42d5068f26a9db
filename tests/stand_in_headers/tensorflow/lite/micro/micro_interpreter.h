// STAND-IN for TFLM's tensorflow/lite/micro/micro_interpreter.h (syntax checks only).
#ifndef TINYHAR_STAND_IN_MICRO_INTERPRETER_H
#define TINYHAR_STAND_IN_MICRO_INTERPRETER_H
#include <stddef.h>
#include <stdint.h>
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
namespace tflite {
class MicroInterpreter {
public:
    MicroInterpreter(const Model *model, const MicroOpResolver &op_resolver, uint8_t *tensor_arena,
                     size_t tensor_arena_size);
    TfLiteStatus AllocateTensors();
    TfLiteStatus Invoke();
    TfLiteStatus Reset();
    TfLiteTensor *input(size_t index);
    TfLiteTensor *output(size_t index);
    size_t arena_used_bytes() const;
};
}  // namespace tflite
#endif
