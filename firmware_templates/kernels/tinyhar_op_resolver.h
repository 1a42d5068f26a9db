// An op resolver that serves tinyhar's own kernels first and the Arduino TFLM library's
// MicroMutableOpResolver for everything else:
//
//   tinyhar::OpResolver<3> resolver;
//   resolver.library().AddAdd();
//   resolver.library().AddSoftmax();
//   resolver.AddBatchMatMul();
#ifndef TINYHAR_OP_RESOLVER_H_
#define TINYHAR_OP_RESOLVER_H_

// The library's headers are not clean under -Wextra (unused parameters in inline functions).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/core/api/flatbuffer_conversions.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#pragma GCC diagnostic pop
#include "tinyhar_kernels.h"

namespace tinyhar {

template <unsigned int tLibraryOps, unsigned int tOwnOps = 1>
class OpResolver : public tflite::MicroOpResolver {
 public:
  static_assert(tOwnOps > 0, "tinyhar::OpResolver needs room for at least one own op");
#ifdef TF_LITE_STATIC_MEMORY
  // As TF_LITE_REMOVE_VIRTUAL_DELETE: no heap, so the deleting destructor must not need one.
  void operator delete(void*) {}
#endif

  OpResolver() : own_len_(0) {}

  tflite::MicroMutableOpResolver<tLibraryOps>& library() { return library_; }
  const tflite::MicroMutableOpResolver<tLibraryOps>& library() const { return library_; }

  // Registers a builtin op served by tinyhar's kernel. The copy gets builtin_code = op: the
  // interpreter picks the options parser from it (0 would parse the node's options as ADD's).
  TfLiteStatus AddOwn(tflite::BuiltinOperator op, const TfLiteRegistration& registration,
                      tflite::TfLiteBridgeBuiltinParseFunction parser) {
    if (op == tflite::BuiltinOperator_CUSTOM || parser == nullptr) {
      MicroPrintf("tinyhar::OpResolver::AddOwn needs a builtin op and its parser (op #%d)",
                  static_cast<int>(op));
      return kTfLiteError;
    }
    if (FindOp(op) != nullptr) {
      MicroPrintf("tinyhar::OpResolver: op #%d is registered already", static_cast<int>(op));
      return kTfLiteError;
    }
    if (own_len_ >= tOwnOps) {
      MicroPrintf("tinyhar::OpResolver: no room for op #%d, tOwnOps is %d", static_cast<int>(op),
                  static_cast<int>(tOwnOps));
      return kTfLiteError;
    }
    Own& own = own_[own_len_++];
    own.registration = registration;
    own.registration.builtin_code = op;
    own.parser = parser;
    return kTfLiteOk;
  }

  TfLiteStatus AddBatchMatMul() {
    return AddOwn(tflite::BuiltinOperator_BATCH_MATMUL, Register_BATCH_MATMUL(),
                  tflite::ParseBatchMatMul);
  }

  const TfLiteRegistration* FindOp(tflite::BuiltinOperator op) const override {
    const Own* own = FindOwn(op);
    return own != nullptr ? &own->registration : library_.FindOp(op);
  }

  const TfLiteRegistration* FindOp(const char* op) const override { return library_.FindOp(op); }

  tflite::TfLiteBridgeBuiltinParseFunction GetOpDataParser(
      tflite::BuiltinOperator op) const override {
    const Own* own = FindOwn(op);
    return own != nullptr ? own->parser : library_.GetOpDataParser(op);
  }

 private:
  struct Own {
    TfLiteRegistration registration;
    tflite::TfLiteBridgeBuiltinParseFunction parser;
  };

  const Own* FindOwn(tflite::BuiltinOperator op) const {
    if (op == tflite::BuiltinOperator_CUSTOM) return nullptr;
    for (unsigned int i = 0; i < own_len_; ++i) {
      if (own_[i].registration.builtin_code == static_cast<int32_t>(op)) return &own_[i];
    }
    return nullptr;
  }

  tflite::MicroMutableOpResolver<tLibraryOps> library_;
  Own own_[tOwnOps];
  unsigned int own_len_;
};

}  // namespace tinyhar

#endif  // TINYHAR_OP_RESOLVER_H_
