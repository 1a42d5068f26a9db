// Instantiates tinyhar::OpResolver the way a firmware does, for the warning-free compile test.
#include "tinyhar_op_resolver.h"

int bmm_register(tinyhar::OpResolver<2>& resolver) {
  if (resolver.library().AddAdd() != kTfLiteOk) return 1;
  if (resolver.library().AddSoftmax() != kTfLiteOk) return 2;
  if (resolver.AddBatchMatMul() != kTfLiteOk) return 3;
  const tflite::MicroOpResolver& base = resolver;
  if (base.FindOp(tflite::BuiltinOperator_BATCH_MATMUL) == nullptr) return 4;
  if (base.GetOpDataParser(tflite::BuiltinOperator_ADD) == nullptr) return 5;
  return base.FindOp("TINYHAR_NONE") == nullptr ? 0 : 6;
}
