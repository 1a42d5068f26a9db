/*
 * tinyhar_imu_replay.h - the IMU of tinyhar's emulated board: a deterministic signal at the
 * sensor's native rate, in the IMU libraries' units (g, deg/s), paced by micros(). Four
 * 10-second "activities" of sines repeat every 40 s, so `tinyhar monitor` shows changing
 * predictions; `tinyhar verify` sends its own samples and does not use it.
 */
#ifndef TINYHAR_EMU_IMU_REPLAY_H
#define TINYHAR_EMU_IMU_REPLAY_H

#include <Arduino.h>

namespace tinyhar_emu {

class ImuReplay {
public:
    ImuReplay(float rate_hz, float reported_rate_hz)
        : period_ns_((uint32_t)(1e9f / rate_hz + 0.5f)), reported_rate_(reported_rate_hz)
    {
    }

    int begin()
    {
        running_ = true;
        last_us_ = (uint32_t)micros();
        pending_ns_ = 0;
        index_ = 0;
        acc_read_ = gyro_read_ = 0;
        return 1;
    }
    void end() { running_ = false; }

    int accelerationAvailable() { return running_ && advance() != acc_read_ ? 1 : 0; }
    int gyroscopeAvailable() { return running_ && advance() != gyro_read_ ? 1 : 0; }
    float accelerationSampleRate() { return reported_rate_; }
    float gyroscopeSampleRate() { return reported_rate_; }

    int readAcceleration(float &x, float &y, float &z)
    {
        acc_read_ = advance();
        float v[6];
        sample(acc_read_, v);
        x = v[0];
        y = v[1];
        z = v[2];
        return running_ ? 1 : 0;
    }

    int readGyroscope(float &x, float &y, float &z)
    {
        gyro_read_ = advance();
        float v[6];
        sample(gyro_read_, v);
        x = v[3];
        y = v[4];
        z = v[5];
        return running_ ? 1 : 0;
    }

    /* the signal of sample k: acceleration in g, then angular rate in deg/s */
    void sample(uint32_t k, float *v) const
    {
        const double t = fmod((double)k * (double)period_ns_ * 1e-9, 40.0);
        const float ts = (float)t;
        const float w = 6.2831853f;
        switch ((int)(t / 10.0)) {
        case 0:  // still: gravity on z, a little noise-like wobble
            set(v, 0.02f * sinf(w * 0.5f * ts), 0.02f * sinf(w * 0.75f * ts), 1.0f,
                1.5f * sinf(w * 0.5f * ts), 1.0f * sinf(w * 0.25f * ts), 0.5f);
            break;
        case 1:  // walking: 1.8 Hz steps
            set(v, 0.3f * sinf(w * 1.8f * ts), 0.15f * sinf(w * 0.9f * ts),
                1.0f + 0.35f * sinf(w * 1.8f * ts + 1.0f), 40.0f * sinf(w * 0.9f * ts),
                25.0f * sinf(w * 1.8f * ts), 15.0f * sinf(w * 0.9f * ts + 0.5f));
            break;
        case 2:  // running: 2.75 Hz, larger
            set(v, 0.8f * sinf(w * 2.75f * ts), 0.4f * sinf(w * 1.375f * ts),
                1.0f + 1.2f * sinf(w * 2.75f * ts + 1.0f), 120.0f * sinf(w * 1.375f * ts),
                80.0f * sinf(w * 2.75f * ts), 40.0f * sinf(w * 1.375f * ts + 0.5f));
            break;
        default:  // cycling: 1.25 Hz pedalling, mostly rotation
            set(v, 0.15f * sinf(w * 1.25f * ts), 0.6f + 0.1f * sinf(w * 2.5f * ts),
                0.8f + 0.1f * sinf(w * 1.25f * ts), 60.0f * sinf(w * 1.25f * ts),
                10.0f * sinf(w * 2.5f * ts), 20.0f * sinf(w * 1.25f * ts + 1.5f));
            break;
        }
    }

private:
    static void set(float *v, float ax, float ay, float az, float gx, float gy, float gz)
    {
        v[0] = ax;
        v[1] = ay;
        v[2] = az;
        v[3] = gx;
        v[4] = gy;
        v[5] = gz;
    }

    /* the index of the newest sample the sensor has produced by now (1 = the first) */
    uint32_t advance()
    {
        const uint32_t now = (uint32_t)micros();
        pending_ns_ += (uint64_t)(uint32_t)(now - last_us_) * 1000u;
        last_us_ = now;
        if (pending_ns_ >= period_ns_) {
            index_ += (uint32_t)(pending_ns_ / period_ns_);
            pending_ns_ %= period_ns_;
        }
        return index_;
    }

    uint32_t period_ns_;
    float reported_rate_;
    bool running_ = false;
    uint32_t last_us_ = 0;
    uint64_t pending_ns_ = 0;
    uint32_t index_ = 0;
    uint32_t acc_read_ = 0;
    uint32_t gyro_read_ = 0;
};

}  // namespace tinyhar_emu

#endif  // TINYHAR_EMU_IMU_REPLAY_H
