// STAND-IN for TFLM's tensorflow/lite/micro/micro_op_resolver.h (syntax checks only).
#ifndef TINYHAR_STAND_IN_MICRO_OP_RESOLVER_H
#define TINYHAR_STAND_IN_MICRO_OP_RESOLVER_H
namespace tflite {
class MicroOpResolver {
public:
    virtual ~MicroOpResolver() {}
};
}  // namespace tflite
#endif
