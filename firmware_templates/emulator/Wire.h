/*
 * Wire.h - an I2C stub for tinyhar's emulated board: the IMU libraries' headers include it, the
 * emulator's IMU replay (Arduino_LSM9DS1.h, ...) takes a TwoWire& and never uses it.
 */
#ifndef TINYHAR_EMU_WIRE_H
#define TINYHAR_EMU_WIRE_H

#include <Arduino.h>

class TwoWire {
public:
    void begin() {}
    void end() {}
    void setClock(uint32_t) {}
    void beginTransmission(uint8_t) {}
    uint8_t endTransmission(bool = true) { return 2; }  // 2: address NACK, nothing on the bus
    uint8_t requestFrom(uint8_t, size_t, bool = true) { return 0; }
    size_t write(uint8_t) { return 0; }
    size_t write(const uint8_t *, size_t) { return 0; }
    int available() { return 0; }
    int read() { return -1; }
};

// One object per program from a header, in C++14 (the core's standard; inline variables are
// C++17): a class template's static members, bound to references in each file.
template <typename Unused>
struct TinyharEmuWire {
    static TwoWire wire0;
    static TwoWire wire1;
};
template <typename Unused>
TwoWire TinyharEmuWire<Unused>::wire0;
template <typename Unused>
TwoWire TinyharEmuWire<Unused>::wire1;
static TwoWire &Wire = TinyharEmuWire<void>::wire0;
static TwoWire &Wire1 = TinyharEmuWire<void>::wire1;

#endif  // TINYHAR_EMU_WIRE_H
