/*
 * tinyhar_core.h - portable core of the tinyhar firmware (C99, no Arduino, no TFLM, no malloc).
 *
 * The core owns the serial protocol (COBS frames with CRC-32, see docs/protocol.md), the raw
 * sample ring buffer, the preprocessing (board units -> training units -> normalise -> int8) and
 * the live prediction stream. The board layer supplies three callbacks (write bytes, run the
 * model, read a microsecond clock), feeds received bytes to tinyhar_rx() and IMU samples to
 * tinyhar_push_sample(). All state lives in a caller-provided tinyhar_dev_t.
 *
 * The same file is compiled by arduino-cli for the board, by the host compiler for the virtual
 * board, and by arm-none-eabi-gcc for the Cortex-M4F under QEMU; preprocessing is bit-identical
 * in all of them and in tinyhar/board/preprocess.py.
 */
#ifndef TINYHAR_CORE_H
#define TINYHAR_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- compile-time maxima (override with -D; a generated firmware sizes them to its model) --- */
#if defined(__has_include)
#if __has_include("tinyhar_limits.h")
#include "tinyhar_limits.h"
#endif
#endif
#ifndef TINYHAR_MAX_WINDOW
#define TINYHAR_MAX_WINDOW 128 /* samples per window */
#endif
#ifndef TINYHAR_MAX_CHANNELS
#define TINYHAR_MAX_CHANNELS 12 /* values per sample */
#endif
#ifndef TINYHAR_MAX_OUTPUT
#define TINYHAR_MAX_OUTPUT 64 /* model output length (= n_classes) */
#endif
#ifndef TINYHAR_MAX_DIMS
#define TINYHAR_MAX_DIMS 6 /* tensor rank reported in HELLO */
#endif
#ifndef TINYHAR_MAX_PAYLOAD
/* a RESULT carrying output and window must fit: 12 + out + window*channels */
#define TINYHAR_MAX_PAYLOAD (TINYHAR_MAX_WINDOW * TINYHAR_MAX_CHANNELS + TINYHAR_MAX_OUTPUT + 32)
#endif

/* ---- protocol constants ------------------------------------------------------------------- */
#define TINYHAR_PROTOCOL_VERSION 5
#define TINYHAR_CORE_VERSION "1.0.0"

/* decoded frame: ver u8 | type u8 | seq u8 | len u16 LE | payload[len] | crc32 u32 LE */
#define TINYHAR_FRAME_HEADER 5
#define TINYHAR_FRAME_CRC 4
#define TINYHAR_FRAME_OVERHEAD (TINYHAR_FRAME_HEADER + TINYHAR_FRAME_CRC)
#define TINYHAR_FRAME_MAX (TINYHAR_MAX_PAYLOAD + TINYHAR_FRAME_OVERHEAD)
/* COBS adds one byte per 254 plus one; then the 0x00 delimiter, and the second delimiter every
   sent frame ends with (docs/protocol.md, Framing) */
#define TINYHAR_ENCODED_MAX (TINYHAR_FRAME_MAX + TINYHAR_FRAME_MAX / 254 + 3)
#define TINYHAR_SEQ_UNKNOWN 0xFF /* seq of an ERROR answering a frame too broken to read */

/* message types: a reply's type is the request's type | 0x80 */
enum {
    TINYHAR_MSG_HELLO = 0x01,        /* -> INFO */
    TINYHAR_MSG_LABELS = 0x02,       /* u8 first index -> LABELS page */
    TINYHAR_MSG_INFER = 0x03,        /* u16 offset + the int8 window's last piece -> RESULT */
    TINYHAR_MSG_SAMPLES = 0x04,      /* n x channels float32 -> STATUS */
    TINYHAR_MSG_INFER_RAW = 0x05,    /* u8 flags -> RESULT (flag bit 0: include the int8 window) */
    TINYHAR_MSG_GET_WINDOW = 0x06,   /* u16 offset, u16 count -> WINDOW (a piece of the int8
                                        window of the last `window` samples) */
    TINYHAR_MSG_RESET_BUFFER = 0x07, /* -> STATUS */
    TINYHAR_MSG_STREAM_START = 0x08, /* -> STATUS, then PREDICTION frames */
    TINYHAR_MSG_STREAM_STOP = 0x09,  /* -> STATUS */
    TINYHAR_MSG_LOAD = 0x0A,         /* u16 offset + a piece of the int8 window -> LOADED */
    TINYHAR_MSG_RECORD_START = 0x0B, /* -> STATUS, then RECORDING frames of the IMU's samples */
    TINYHAR_MSG_RECORD_STOP = 0x0C,  /* -> the last RECORDING frame, then STATUS */
    TINYHAR_MSG_PROFILE = 0x0D,      /* u16 first node -> PROFILE page of the last inference */
    TINYHAR_REPLY = 0x80,
    TINYHAR_MSG_PREDICTION = 0xA0, /* unsolicited, while streaming */
    TINYHAR_MSG_RECORDING = 0xA1,  /* unsolicited, while recording */
    TINYHAR_MSG_ERROR = 0xE0
};

#define TINYHAR_INFER_RAW_WITH_WINDOW 0x01
/* STATUS flags */
#define TINYHAR_STATUS_STREAMING 0x01
#define TINYHAR_STATUS_RECORDING 0x02
/* most bytes of samples in one RECORDING frame (whole samples of cfg->channels floats) */
#define TINYHAR_RECORD_BYTES 240

/* what a PROFILE page counts (its unit byte) */
#define TINYHAR_PROFILE_NONE 0         /* no profiler compiled in */
#define TINYHAR_PROFILE_INSTRUCTIONS 1 /* the emulated board (QEMU -icount) */
#define TINYHAR_PROFILE_CYCLES 2       /* the DWT cycle counter of a Cortex-M4/M7 */
#define TINYHAR_PROFILE_MICROSECONDS 3 /* micros(), where there is no cycle counter */
#define TINYHAR_PROFILE_NANOSECONDS 4  /* the host */

/* The model runner's per-node counts of its last inference (see tinyhar_set_profile). */
typedef struct {
    uint8_t unit;           /* TINYHAR_PROFILE_* */
    uint16_t nodes;         /* nodes counted in the last inference (0: none yet) */
    const uint32_t *counts; /* counts[nodes] */
} tinyhar_profile_t;

/* error codes carried by ERROR frames (and returned by tinyhar_init) */
enum {
    TINYHAR_OK = 0,
    TINYHAR_ERR_BAD_CRC = 1,         /* CRC-32 mismatch (seq 0xFF) */
    TINYHAR_ERR_BAD_FRAME = 2,       /* COBS malformed or shorter than 9 bytes (seq 0xFF) */
    TINYHAR_ERR_TOO_LONG = 3,        /* frame longer than TINYHAR_FRAME_MAX (seq 0xFF) */
    TINYHAR_ERR_BAD_VERSION = 4,     /* protocol version byte != TINYHAR_PROTOCOL_VERSION */
    TINYHAR_ERR_BAD_LENGTH = 5,      /* length field or payload size wrong; detail = expected */
    TINYHAR_ERR_UNKNOWN_TYPE = 6,    /* not a request type */
    TINYHAR_ERR_WINDOW_NOT_FULL = 7, /* fewer than `window` samples; detail = samples held */
    TINYHAR_ERR_INFER_FAILED = 8,    /* the infer hook returned non-zero; detail = its code */
    TINYHAR_ERR_BAD_STATE = 9,       /* no model (infer hook missing) */
    TINYHAR_ERR_BAD_ARG = 10,        /* argument out of range (flags, label index) */
    TINYHAR_ERR_BAD_CONFIG = 11      /* tinyhar_init: configuration invalid */
};

/* TFLite TensorType codes, used for the dtype fields */
enum {
    TINYHAR_DTYPE_FLOAT32 = 0,
    TINYHAR_DTYPE_FLOAT16 = 1,
    TINYHAR_DTYPE_INT32 = 2,
    TINYHAR_DTYPE_UINT8 = 3,
    TINYHAR_DTYPE_INT64 = 4,
    TINYHAR_DTYPE_INT16 = 7,
    TINYHAR_DTYPE_INT8 = 9
};

/* what answers on the port, HELLO's last byte (board/protocol.py DeviceKind) */
enum {
    TINYHAR_DEVICE_BOARD = 0,    /* the firmware on a real board */
    TINYHAR_DEVICE_VIRTUAL = 1,  /* the core on the host (tinyhar sim) */
    TINYHAR_DEVICE_EMULATED = 2  /* the firmware on QEMU (tinyhar sim --emulate) */
};

/* ---- configuration (normally generated into tinyhar_config.h) ------------------------------ */
typedef struct {
    uint16_t window;    /* samples per window (<= TINYHAR_MAX_WINDOW) */
    uint16_t stride;    /* samples between stream predictions (>= 1) */
    uint16_t channels;  /* values per sample, board and training frame alike */
    uint16_t n_classes; /* output vector length (<= TINYHAR_MAX_OUTPUT) */
    float rate_hz;      /* training sample rate */
    /* training channel c = axis_sign[c] * raw[axis_src[c]] * unit_factor[c] */
    float unit_factor[TINYHAR_MAX_CHANNELS];
    uint8_t axis_src[TINYHAR_MAX_CHANNELS]; /* index into the raw board sample */
    int8_t axis_sign[TINYHAR_MAX_CHANNELS]; /* +1 or -1 */
    /* normalised = (training - mean[c]) * inv_std[c] */
    float mean[TINYHAR_MAX_CHANNELS];
    float inv_std[TINYHAR_MAX_CHANNELS];
    /* model tensors (quantization as in the .tflite) */
    float input_scale;
    int32_t input_zero_point;
    float output_scale;
    int32_t output_zero_point;
    uint8_t input_dtype; /* TINYHAR_DTYPE_* of the model's tensor */
    uint8_t output_dtype;
    uint8_t input_ndims;
    uint8_t output_ndims;
    uint32_t input_dims[TINYHAR_MAX_DIMS];
    uint32_t output_dims[TINYHAR_MAX_DIMS];
    uint32_t model_crc32; /* CRC-32 (zlib) of the .tflite bytes */
    uint32_t arena_bytes; /* tensor arena size compiled in */
    const char *board_name;
    const char *firmware_version;
    const char *const *labels; /* n_classes names, or NULL */
    uint8_t device_kind;       /* TINYHAR_DEVICE_* */
} tinyhar_config_t;

/* ---- platform callbacks ------------------------------------------------------------------- */
typedef struct {
    /* send bytes to the host (one call per encoded frame, delimiter included) */
    void (*write)(const uint8_t *data, size_t len, void *ctx);
    /* run the model on one int8 window; fill out[out_len]; return 0 on success.
       NULL means "no model": INFER answers TINYHAR_ERR_BAD_STATE. */
    int (*infer)(const int8_t *in, size_t in_len, int8_t *out, size_t out_len, void *ctx);
    /* free-running microsecond clock (wraps); NULL reports latency 0 */
    uint32_t (*micros)(void *ctx);
    void *ctx;
} tinyhar_platform_t;

/* ---- device state (allocate statically; fields are private) -------------------------------- */
typedef struct {
    const tinyhar_config_t *cfg;
    tinyhar_platform_t plat;
    /* receiver: streaming COBS decoder */
    uint8_t rx[TINYHAR_FRAME_MAX];
    size_t rx_len;
    uint8_t rx_left;     /* bytes left in the current COBS block */
    uint8_t rx_code;     /* code byte of the current COBS block */
    uint8_t rx_started;  /* a COBS block has begun */
    uint8_t rx_overflow; /* frame exceeded TINYHAR_FRAME_MAX */
    /* transmitter */
    uint8_t tx_raw[TINYHAR_FRAME_MAX];
    uint8_t tx_enc[TINYHAR_ENCODED_MAX];
    /* raw sample ring buffer (board units) */
    float ring[TINYHAR_MAX_WINDOW * TINYHAR_MAX_CHANNELS];
    uint16_t ring_head; /* next slot to write */
    uint16_t ring_fill; /* samples held, <= window */
    uint32_t samples_total;
    uint32_t since_prediction;
    uint8_t streaming;
    uint8_t prediction_seq;
    /* what the model runner reported at start-up (HELLO carries both) */
    uint8_t runner_status;
    uint32_t arena_used;
    /* recording: raw samples sent to the host as they come (RECORD_START .. RECORD_STOP) */
    uint8_t recording;
    uint8_t record_seq;      /* RECORDING frame counter (wraps) */
    uint16_t record_fill;    /* samples waiting in record_buf */
    uint32_t record_total;   /* samples recorded since RECORD_START, buffered ones included */
    float record_buf[TINYHAR_RECORD_BYTES / 4];
    /* duplicate SAMPLES detection */
    uint8_t last_samples_valid;
    uint8_t last_samples_seq;
    uint32_t last_samples_crc;
    /* work buffers */
    int8_t window[TINYHAR_MAX_WINDOW * TINYHAR_MAX_CHANNELS];
    uint16_t window_loaded; /* bytes of window[] that LOAD/INFER filled, contiguous from 0 */
    int8_t output[TINYHAR_MAX_OUTPUT];
    /* counters */
    uint32_t rx_frames; /* frames accepted */
    uint32_t rx_errors; /* frames answered with an ERROR */
} tinyhar_dev_t;

/* ---- device API --------------------------------------------------------------------------- */
/* Validate cfg and reset dev. Returns TINYHAR_OK or TINYHAR_ERR_BAD_CONFIG. cfg and the strings it
   points to must outlive dev; plat is copied. */
int tinyhar_init(tinyhar_dev_t *dev, const tinyhar_config_t *cfg, const tinyhar_platform_t *plat);

/* The profile PROFILE requests read (NULL: none, the default). A runner built with a profiler
   sets it once; it must outlive every device. */
void tinyhar_set_profile(const tinyhar_profile_t *profile);

/* Feed bytes received from the host; complete frames are answered through plat.write. */
void tinyhar_rx(tinyhar_dev_t *dev, const uint8_t *data, size_t n);

/* Append one raw sample (cfg->channels floats, board units and axes). While streaming, runs an
   inference every `stride` samples once the window is full and sends a PREDICTION frame. */
void tinyhar_push_sample(tinyhar_dev_t *dev, const float *raw);

/* Start (on != 0) or stop the prediction stream, as STREAM_START / STREAM_STOP do. */
void tinyhar_set_streaming(tinyhar_dev_t *dev, int on);

/* The runner's start-up code (0 = ready, else why the model cannot run) and the arena bytes it
   uses; HELLO reports them so the host can say "the arena is too small" rather than "no model". */
void tinyhar_set_runner_info(tinyhar_dev_t *dev, int status, uint32_t arena_used);

/* 1 while the prediction stream is on (the board layer reads its IMU only then), else 0. */
int tinyhar_is_streaming(const tinyhar_dev_t *dev);

/* 1 while recording (RECORD_START .. RECORD_STOP): the board layer feeds the IMU then too. */
int tinyhar_is_recording(const tinyhar_dev_t *dev);

/* The canonical preprocessing: n_samples raw samples (n_samples x cfg->channels floats, board
   units) to int8 (same layout). float32 arithmetic, no fused multiply-add, round half to even. */
void tinyhar_preprocess(const tinyhar_config_t *cfg, const float *raw_samples, size_t n_samples,
                        int8_t *out);

/* ---- framing utilities (also used by tests) ----------------------------------------------- */
/* CRC-32 as zlib.crc32: start with crc = 0, chain by passing the previous result. */
uint32_t tinyhar_crc32(uint32_t crc, const uint8_t *data, size_t n);

/* Build one encoded frame (COBS + trailing 0x00) into out. Returns its length, or 0 when the
   payload exceeds TINYHAR_MAX_PAYLOAD or out_cap is too small. */
size_t tinyhar_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                            uint8_t *out, size_t out_cap);

/* Decode one encoded frame (with or without its trailing 0x00). Returns TINYHAR_OK or an error
   code (BAD_FRAME, TOO_LONG, BAD_CRC, BAD_LENGTH, BAD_VERSION); on success fills type, seq,
   payload (capacity payload_cap) and *payload_len. */
int tinyhar_frame_decode(const uint8_t *enc, size_t n, uint8_t *type, uint8_t *seq,
                         uint8_t *payload, size_t payload_cap, size_t *payload_len);

/* sizes for foreign-function wrappers that mirror the structs */
size_t tinyhar_sizeof_config(void);
size_t tinyhar_sizeof_dev(void);

#ifdef __cplusplus
}
#endif

#endif /* TINYHAR_CORE_H */
