// STAND-IN for TFLM's tensorflow/lite/schema/schema_generated.h (syntax checks only).
#ifndef TINYHAR_STAND_IN_SCHEMA_GENERATED_H
#define TINYHAR_STAND_IN_SCHEMA_GENERATED_H
#include <stdint.h>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model {
    uint32_t version() const;
};
const Model *GetModel(const void *buf);
}  // namespace tflite
#endif
