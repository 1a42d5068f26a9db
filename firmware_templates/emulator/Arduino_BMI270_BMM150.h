/*
 * Arduino_BMI270_BMM150.h - tinyhar's emulated BMI270 + BMM150 (Nano 33 BLE Rev2): the
 * Arduino_BMI270_BMM150 API over the IMU replay. The chip runs at 100 Hz (ODR_100HZ); like the
 * library, the sample rates report (1 << odr) * 0.39 = 99.84 Hz. Units g and deg/s.
 */
#ifndef TINYHAR_EMU_ARDUINO_BMI270_BMM150_H
#define TINYHAR_EMU_ARDUINO_BMI270_BMM150_H

#include <Arduino.h>
#include <Wire.h>

#include "tinyhar_imu_replay.h"

class BoschSensorClass : public tinyhar_emu::ImuReplay {
public:
    explicit BoschSensorClass(TwoWire & = Wire) : ImuReplay(100.0f, 99.84f) {}

    void setContinuousMode() {}
    void oneShotMode() {}
    void debug(Stream &) {}

    int readMagneticField(float &x, float &y, float &z)
    {
        x = 20.0f;
        y = 0.0f;
        z = -40.0f;
        return 1;
    }
    int magneticFieldAvailable() { return 1; }
    float magneticFieldSampleRate() { return 10.0f; }
};

template <typename Unused>
struct TinyharEmuBmi270 {
    static BoschSensorClass imu;
};
template <typename Unused>
BoschSensorClass TinyharEmuBmi270<Unused>::imu(Wire);
static BoschSensorClass &IMU_BMI270_BMM150 = TinyharEmuBmi270<void>::imu;  // see Wire.h
#undef IMU
#define IMU IMU_BMI270_BMM150

#endif  // TINYHAR_EMU_ARDUINO_BMI270_BMM150_H
