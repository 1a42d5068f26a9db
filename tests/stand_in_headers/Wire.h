// STAND-IN for the Arduino core's Wire.h (no source of the mbed core here): what the real IMU
// libraries' headers declare against. Nothing talks I2C in the host tests.
#ifndef TINYHAR_STAND_IN_WIRE_H
#define TINYHAR_STAND_IN_WIRE_H
#include <Arduino.h>

class TwoWire {
public:
    void begin() {}
};
extern TwoWire Wire1;
#endif
