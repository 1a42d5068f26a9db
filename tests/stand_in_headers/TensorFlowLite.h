// STAND-IN for the Arduino_TensorFlowLite library's umbrella header (syntax checks only).
#ifndef TINYHAR_STAND_IN_TENSORFLOWLITE_H
#define TINYHAR_STAND_IN_TENSORFLOWLITE_H
#endif
