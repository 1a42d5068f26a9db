/*
 * Arduino_LSM6DSOX.h - tinyhar's emulated LSM6DSOX (Nano RP2040 Connect): the Arduino_LSM6DSOX
 * API over the IMU replay, 104 Hz, g and deg/s.
 */
#ifndef TINYHAR_EMU_ARDUINO_LSM6DSOX_H
#define TINYHAR_EMU_ARDUINO_LSM6DSOX_H

#include <Arduino.h>
#include <Wire.h>

#include "tinyhar_imu_replay.h"

class LSM6DSOXClass : public tinyhar_emu::ImuReplay {
public:
    LSM6DSOXClass(TwoWire &, uint8_t) : ImuReplay(104.0f, 104.0f) {}

    int readTemperature(int &temperature_deg)
    {
        temperature_deg = 25;
        return 1;
    }
    int temperatureAvailable() { return 1; }
};

template <typename Unused>
struct TinyharEmuLsm6dsox {
    static LSM6DSOXClass imu;
};
template <typename Unused>
LSM6DSOXClass TinyharEmuLsm6dsox<Unused>::imu(Wire, 0x6A);
static LSM6DSOXClass &IMU = TinyharEmuLsm6dsox<void>::imu;  // one object (see Wire.h)

#endif  // TINYHAR_EMU_ARDUINO_LSM6DSOX_H
