// STAND-IN for TFLM's tensorflow/lite/c/common.h: status and tensor (syntax checks only).
#ifndef TINYHAR_STAND_IN_TFLITE_COMMON_H
#define TINYHAR_STAND_IN_TFLITE_COMMON_H
#include <stddef.h>
#include <stdint.h>
typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef union TfLitePtrUnion {
    int32_t *i32;
    float *f;
    int8_t *int8;
    uint8_t *uint8;
    void *data;
} TfLitePtrUnion;
typedef struct TfLiteTensor {
    TfLiteType type;
    TfLitePtrUnion data;
    size_t bytes;
} TfLiteTensor;
#endif
