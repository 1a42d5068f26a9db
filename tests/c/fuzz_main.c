/* Randomised fuzzer for the firmware core's receiver, dispatcher and frame decoder.
   Build with -fsanitize=address,undefined -fno-sanitize-recover=all; run as
     fuzz <seconds> <seed>
   It feeds random bytes, valid requests and mutated requests into tinyhar_rx in random chunk
   sizes, pushes random samples and toggles the stream, and checks that every byte the device
   writes forms valid frames and that each valid request gets exactly one reply with its seq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinyhar_core.h"

#define WINDOW 16
#define CH 6
#define NCLS 5
#define MAX_IN (3 * TINYHAR_ENCODED_MAX)

static const char *const labels[NCLS] = {"a", "bb", "ccc", "", "e"};
static tinyhar_config_t cfg;
static tinyhar_dev_t dev;
static uint64_t rng_state;
static uint8_t out_buf[64 * TINYHAR_ENCODED_MAX];
static size_t out_len;
static size_t replies, predictions;
static int last_reply_seq;
static uint8_t input[MAX_IN];
static uint8_t payload[TINYHAR_MAX_PAYLOAD + 64];
static uint8_t decoded[TINYHAR_MAX_PAYLOAD];

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static uint32_t below(uint32_t n)
{
    return n == 0 ? 0 : rnd() % n;
}

static void fail(const char *what)
{
    fprintf(stderr, "FUZZ FAILURE: %s\n", what);
    abort();
}

/* Check each frame the device wrote, then forget them. */
static void drain(void)
{
    size_t start = 0, i;
    for (i = 0; i < out_len; i++) {
        if (out_buf[i] == 0 && i == start) {
            start = i + 1; /* the second delimiter after a frame: an empty frame */
        } else if (out_buf[i] == 0) {
            uint8_t type, seq;
            size_t plen;
            int rc = tinyhar_frame_decode(out_buf + start, i + 1 - start, &type, &seq, decoded,
                                          sizeof decoded, &plen);
            if (rc != TINYHAR_OK) {
                fail("the device wrote an invalid frame");
            }
            if (type == TINYHAR_MSG_PREDICTION ||
                (type == TINYHAR_MSG_ERROR && plen >= 2 && decoded[1] == TINYHAR_MSG_PREDICTION)) {
                predictions++;
            } else {
                replies++;
                last_reply_seq = seq;
            }
            start = i + 1;
        }
    }
    if (start != out_len) {
        fail("the device wrote bytes after its last delimiter");
    }
    out_len = 0;
}

static void on_write(const uint8_t *data, size_t len, void *ctx)
{
    (void)ctx;
    /* one frame and its two delimiters (docs/protocol.md, Frames) */
    if (len < 3 || data[len - 1] != 0 || memchr(data, 0, len) != data + len - 2) {
        fail("write() did not carry exactly one frame ending in two delimiters");
    }
    if (out_len + len > sizeof out_buf) {
        drain();
    }
    memcpy(out_buf + out_len, data, len);
    out_len += len;
}

static int on_infer(const int8_t *in, size_t in_len, int8_t *out, size_t out_len_, void *ctx)
{
    size_t k;
    (void)ctx;
    if (in_len != WINDOW * CH || out_len_ != NCLS) {
        fail("infer hook called with wrong sizes");
    }
    for (k = 0; k < out_len_; k++) {
        out[k] = in[k * 3];
    }
    return below(16) == 0 ? 3 : 0;
}

static uint32_t on_micros(void *ctx)
{
    (void)ctx;
    return rnd();
}

static void feed(const uint8_t *data, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = 1 + below(below(2) ? 8 : 700);
        if (k > n - i) {
            k = n - i;
        }
        tinyhar_rx(&dev, data + i, k);
        i += k;
    }
}

static float random_float(void)
{
    uint32_t bits = rnd() ^ (rnd() << 21);
    float f;
    if (below(4) == 0) {
        memcpy(&f, &bits, sizeof f); /* any bit pattern: NaN, inf, denormals */
        return f;
    }
    return ((float)below(20001) - 10000.0f) / (float)(1 + below(1000));
}

/* A request with a plausible payload; returns its encoded length. */
static size_t make_request(uint8_t *dst, size_t cap, uint8_t *seq_out)
{
    static const uint8_t types[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0x42, 0x81, 0xE0};
    uint8_t type = types[below(sizeof types)];
    uint8_t seq = (uint8_t)below(255);
    size_t len = 0, i;
    switch (below(5)) {
    case 0: /* the size the device expects */
        if (type == 3) {
            len = WINDOW * CH;
        } else if (type == 4) {
            len = (1 + below(60)) * CH * 4;
        } else if (type == 2 || type == 5) {
            len = 1;
        }
        break;
    case 1:
        len = below(TINYHAR_MAX_PAYLOAD + 1);
        break;
    default:
        len = below(8);
        break;
    }
    if (len > TINYHAR_MAX_PAYLOAD) {
        len = TINYHAR_MAX_PAYLOAD;
    }
    if (type == 4 && len % (CH * 4) == 0) {
        for (i = 0; i + 4 <= len; i += 4) {
            float f = random_float();
            memcpy(payload + i, &f, 4);
        }
    } else {
        for (i = 0; i < len; i++) {
            payload[i] = (uint8_t)(below(3) == 0 ? 0 : rnd());
        }
        if (len == 1 && below(2)) {
            payload[0] = (uint8_t)below(3);
        }
    }
    *seq_out = seq;
    return tinyhar_frame_encode(type, seq, payload, len, dst, cap);
}

static size_t mutate(uint8_t *d, size_t n, size_t cap)
{
    uint32_t edits = 1 + below(6), e;
    for (e = 0; e < edits; e++) {
        uint32_t op = below(5);
        if (n == 0) {
            break;
        }
        if (op == 0) {
            d[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
        } else if (op == 1) {
            d[below((uint32_t)n)] = (uint8_t)rnd();
        } else if (op == 2 && n + 1 < cap) {
            size_t at = below((uint32_t)n + 1);
            memmove(d + at + 1, d + at, n - at);
            d[at] = (uint8_t)rnd();
            n++;
        } else if (op == 3) {
            size_t at = below((uint32_t)n);
            memmove(d + at, d + at + 1, n - at - 1);
            n--;
        } else {
            n = below((uint32_t)n + 1);
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    unsigned long seed = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    unsigned long iterations = 0, checked = 0;
    clock_t stop;
    tinyhar_platform_t plat;
    size_t c;

    rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)seed;
    cfg.window = WINDOW;
    cfg.stride = 3;
    cfg.channels = CH;
    cfg.n_classes = NCLS;
    cfg.rate_hz = 50.0f;
    for (c = 0; c < CH; c++) {
        cfg.unit_factor[c] = c < 3 ? 9.80665f : 1.0f;
        cfg.axis_src[c] = (uint8_t)(CH - 1 - c);
        cfg.axis_sign[c] = (int8_t)(c % 2 ? -1 : 1);
        cfg.mean[c] = 0.5f * (float)c;
        cfg.inv_std[c] = 0.25f;
    }
    cfg.input_scale = 0.05f;
    cfg.input_zero_point = -7;
    cfg.output_scale = 1.0f / 256.0f;
    cfg.output_zero_point = -128;
    cfg.board_name = "fuzz";
    cfg.firmware_version = "fuzz";
    cfg.labels = labels;
    plat.write = on_write;
    plat.infer = on_infer;
    plat.micros = on_micros;
    plat.ctx = NULL;
    if (tinyhar_init(&dev, &cfg, &plat) != TINYHAR_OK) {
        fail("init");
    }

    stop = clock() + (clock_t)(seconds * CLOCKS_PER_SEC);
    while (clock() < stop) {
        uint32_t what = below(6);
        size_t n = 0;
        uint8_t seq = 0;
        iterations++;
        if (what == 0) { /* random bytes, sparse or dense in zeros */
            uint32_t zeros = below(64);
            n = below(MAX_IN);
            for (c = 0; c < n; c++) {
                input[c] = below(64) < zeros ? 0 : (uint8_t)rnd();
            }
            feed(input, n);
            drain();
        } else if (what <= 2) { /* one valid request: exactly one reply with its seq */
            input[0] = 0;
            feed(input, 1); /* flush a partial frame (answered with an ERROR) */
            drain();
            n = make_request(input, sizeof input, &seq);
            feed(input, n);
            replies = 0;
            drain();
            if (replies != 1 || last_reply_seq != seq) {
                fail("a valid request did not get exactly one reply with its seq");
            }
            checked++;
        } else if (what == 3) { /* a mutated request: anything but a crash or invalid output */
            n = make_request(input, sizeof input, &seq);
            n = mutate(input, n, sizeof input);
            feed(input, n);
            drain();
        } else if (what == 4) { /* samples from the "IMU" and stream toggling */
            float raw[CH];
            uint32_t k, count = below(40);
            for (k = 0; k < count; k++) {
                for (c = 0; c < CH; c++) {
                    raw[c] = random_float();
                }
                tinyhar_push_sample(&dev, raw);
            }
            if (below(4) == 0) {
                tinyhar_set_streaming(&dev, (int)below(2));
            }
            drain();
        } else { /* the standalone decoder on mutated encodings */
            uint8_t type, s2;
            size_t plen, cap = below(TINYHAR_MAX_PAYLOAD + 1);
            n = make_request(input, sizeof input, &seq);
            n = mutate(input, n, sizeof input);
            (void)tinyhar_frame_decode(input, n, &type, &s2, decoded, cap, &plen);
        }
    }
    printf("iterations %lu checked %lu predictions %lu\n", iterations, checked,
           (unsigned long)predictions);
    return 0;
}
