/*
 * Arduino_LSM9DS1.h - tinyhar's emulated LSM9DS1 (Nano 33 BLE Rev1): the Arduino_LSM9DS1 API
 * over the IMU replay, 119 Hz, g and deg/s. Only `tinyhar sim --emulate` builds against it.
 */
#ifndef TINYHAR_EMU_ARDUINO_LSM9DS1_H
#define TINYHAR_EMU_ARDUINO_LSM9DS1_H

#include <Arduino.h>
#include <Wire.h>

#include "tinyhar_imu_replay.h"

class LSM9DS1Class : public tinyhar_emu::ImuReplay {
public:
    explicit LSM9DS1Class(TwoWire &) : ImuReplay(119.0f, 119.0f) {}

    void setContinuousMode() {}
    void setOneShotMode() {}

    int readMagneticField(float &x, float &y, float &z)
    {
        x = 20.0f;
        y = 0.0f;
        z = -40.0f;
        return 1;
    }
    int magneticFieldAvailable() { return 1; }
    float magneticFieldSampleRate() { return 20.0f; }
};

template <typename Unused>
struct TinyharEmuLsm9ds1 {
    static LSM9DS1Class imu;
};
template <typename Unused>
LSM9DS1Class TinyharEmuLsm9ds1<Unused>::imu(Wire);
static LSM9DS1Class &IMU_LSM9DS1 = TinyharEmuLsm9ds1<void>::imu;  // one object (see Wire.h)
#undef IMU
#define IMU IMU_LSM9DS1

#endif  // TINYHAR_EMU_ARDUINO_LSM9DS1_H
