/*
 * tinyhar_core.c - portable core of the tinyhar firmware. See tinyhar_core.h and docs/protocol.md.
 * C99, no dynamic allocation, no recursion, every loop bounded by a compile-time maximum or a
 * length already checked against one.
 */
#include "tinyhar_core.h"

#include <string.h>

#if defined(__FAST_MATH__)
#error "tinyhar_core.c must not be compiled with -ffast-math: preprocessing must be bit-exact"
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* no fused multiply-add; the volatile stores in preprocess_value() also enforce this */
#pragma GCC optimize("fp-contract=off")
#endif

#if TINYHAR_MAX_PAYLOAD < TINYHAR_MAX_WINDOW * TINYHAR_MAX_CHANNELS + TINYHAR_MAX_OUTPUT + 12
#error "TINYHAR_MAX_PAYLOAD too small for a RESULT with output and window"
#endif
#if TINYHAR_MAX_PAYLOAD < TINYHAR_RECORD_BYTES + 7
#error "TINYHAR_MAX_PAYLOAD too small for a RECORDING frame"
#endif
#if TINYHAR_MAX_PAYLOAD > 65535
#error "TINYHAR_MAX_PAYLOAD must fit the u16 length field"
#endif
#if TINYHAR_MAX_WINDOW > 65535 || TINYHAR_MAX_OUTPUT > 255
#error "TINYHAR_MAX_WINDOW must fit u16 and TINYHAR_MAX_OUTPUT u8"
#endif

/* ---- little-endian helpers ------------------------------------------------------------ */
static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    put_u32(p, v);
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static float get_f32(const uint8_t *p)
{
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* ---- CRC-32 (reflected 0xEDB88320, init/xorout 0xFFFFFFFF: zlib.crc32) ---------------------- */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t tinyhar_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

/* ---- COBS ------------------------------------------------------------------------------- */
/* Encode n bytes into out (capacity cap), append 0x00. Returns the length or 0 if cap is short. */
static size_t cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_pos = 0, o = 1, i;
    uint8_t code = 1;
    if (cap < n + n / 254 + 2) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_pos] = code;
            code_pos = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            code++;
            if (code == 0xFF) {
                out[code_pos] = code;
                code_pos = o++;
                code = 1;
            }
        }
    }
    out[code_pos] = code;
    out[o++] = 0;
    return o;
}

/* ---- preprocessing ---------------------------------------------------------------------- */
/* Round half to even for |x| <= 1024 (callers clamp first): adding and removing 2^23 leaves
   the nearest integer in IEEE round-to-nearest-even; volatile keeps the steps apart. */
static float round_half_even(float x)
{
    volatile float t;
    if (x >= 0.0f) {
        t = x + 8388608.0f;
        return t - 8388608.0f;
    }
    t = -x + 8388608.0f;
    return -(t - 8388608.0f);
}

static int8_t preprocess_value(const tinyhar_config_t *cfg, const float *raw, size_t c,
                               float inv_scale)
{
    volatile float v, d, nrm, x;
    int32_t q;
    float r;
    v = raw[cfg->axis_src[c]] * cfg->unit_factor[c];
    if (cfg->axis_sign[c] < 0) {
        v = -v;
    }
    d = v - cfg->mean[c];
    nrm = d * cfg->inv_std[c];
    x = nrm * inv_scale;
    r = x;
    if (r != r) { /* NaN: the zero point */
        r = 0.0f;
    } else if (r > 1024.0f) {
        r = 1024.0f;
    } else if (r < -1024.0f) {
        r = -1024.0f;
    }
    q = (int32_t)round_half_even(r) + cfg->input_zero_point;
    if (q > 127) {
        q = 127;
    } else if (q < -128) {
        q = -128;
    }
    return (int8_t)q;
}

void tinyhar_preprocess(const tinyhar_config_t *cfg, const float *raw_samples, size_t n_samples,
                        int8_t *out)
{
    volatile float inv_scale = 1.0f / cfg->input_scale;
    size_t s, c, ch = cfg->channels;
    for (s = 0; s < n_samples; s++) {
        for (c = 0; c < ch; c++) {
            out[s * ch + c] = preprocess_value(cfg, raw_samples + s * ch, c, inv_scale);
        }
    }
}

/* ---- device ----------------------------------------------------------------------------- */
static void rx_reset(tinyhar_dev_t *dev)
{
    dev->rx_len = 0;
    dev->rx_left = 0;
    dev->rx_code = 0;
    dev->rx_started = 0;
    dev->rx_overflow = 0;
}

static void buffer_reset(tinyhar_dev_t *dev)
{
    dev->ring_head = 0;
    dev->ring_fill = 0;
    dev->samples_total = 0;
    dev->since_prediction = 0;
    dev->last_samples_valid = 0;
}

size_t tinyhar_sizeof_config(void)
{
    return sizeof(tinyhar_config_t);
}

size_t tinyhar_sizeof_dev(void)
{
    return sizeof(tinyhar_dev_t);
}

static size_t dims_product(const uint32_t *dims, uint8_t ndims)
{
    size_t p = 1;
    uint8_t i;
    for (i = 0; i < ndims && i < TINYHAR_MAX_DIMS; i++) {
        p *= dims[i];
    }
    return p;
}

int tinyhar_init(tinyhar_dev_t *dev, const tinyhar_config_t *cfg, const tinyhar_platform_t *plat)
{
    size_t c;
    if (dev == NULL || cfg == NULL || plat == NULL) {
        return TINYHAR_ERR_BAD_CONFIG;
    }
    memset(dev, 0, sizeof *dev);
    if (cfg->window == 0 || cfg->window > TINYHAR_MAX_WINDOW || cfg->channels == 0 ||
        cfg->channels > TINYHAR_MAX_CHANNELS || cfg->stride == 0 || cfg->n_classes == 0 ||
        cfg->n_classes > TINYHAR_MAX_OUTPUT || cfg->input_ndims > TINYHAR_MAX_DIMS ||
        cfg->output_ndims > TINYHAR_MAX_DIMS || !(cfg->input_scale > 0.0f)) {
        return TINYHAR_ERR_BAD_CONFIG;
    }
    if (cfg->input_ndims > 0 &&
        dims_product(cfg->input_dims, cfg->input_ndims) != (size_t)cfg->window * cfg->channels) {
        return TINYHAR_ERR_BAD_CONFIG;
    }
    if (cfg->output_ndims > 0 &&
        dims_product(cfg->output_dims, cfg->output_ndims) != cfg->n_classes) {
        return TINYHAR_ERR_BAD_CONFIG;
    }
    for (c = 0; c < cfg->channels; c++) {
        if (cfg->axis_src[c] >= cfg->channels ||
            (cfg->axis_sign[c] != 1 && cfg->axis_sign[c] != -1)) {
            return TINYHAR_ERR_BAD_CONFIG;
        }
    }
    dev->cfg = cfg;
    dev->plat = *plat;
    rx_reset(dev);
    buffer_reset(dev);
    return TINYHAR_OK;
}

static void send_frame(tinyhar_dev_t *dev, uint8_t type, uint8_t seq, size_t len)
{
    /* the payload is already in dev->tx_raw + TINYHAR_FRAME_HEADER */
    uint8_t *f = dev->tx_raw;
    size_t n;
    f[0] = TINYHAR_PROTOCOL_VERSION;
    f[1] = type;
    f[2] = seq;
    put_u16(f + 3, (uint32_t)len);
    put_u32(f + TINYHAR_FRAME_HEADER + len,
            tinyhar_crc32(0, f, TINYHAR_FRAME_HEADER + len));
    n = cobs_encode(f, TINYHAR_FRAME_OVERHEAD + len, dev->tx_enc, sizeof dev->tx_enc - 1);
    if (n > 0 && dev->plat.write != NULL) {
        /* a second delimiter: a line that corrupts or drops one still ends the frame, and the
           host retries at once instead of waiting in silence (docs/protocol.md, Framing) */
        dev->tx_enc[n++] = 0;
        dev->plat.write(dev->tx_enc, n, dev->plat.ctx);
    }
}

static uint8_t *payload_out(tinyhar_dev_t *dev)
{
    return dev->tx_raw + TINYHAR_FRAME_HEADER;
}

static void send_error(tinyhar_dev_t *dev, uint8_t seq, uint8_t req_type, uint8_t code,
                       uint32_t detail)
{
    uint8_t *p = payload_out(dev);
    p[0] = code;
    p[1] = req_type;
    put_u32(p + 2, detail);
    dev->rx_errors++;
    send_frame(dev, TINYHAR_MSG_ERROR, seq, 6);
}

static size_t put_tensor(uint8_t *p, uint8_t dtype, uint8_t ndims, const uint32_t *dims,
                         float scale, int32_t zp)
{
    size_t o = 0;
    uint8_t i;
    p[o++] = dtype;
    p[o++] = ndims;
    for (i = 0; i < ndims && i < TINYHAR_MAX_DIMS; i++) {
        put_u32(p + o, dims[i]);
        o += 4;
    }
    put_f32(p + o, scale);
    put_u32(p + o + 4, (uint32_t)zp);
    return o + 8;
}

static size_t put_string(uint8_t *p, const char *s, size_t max)
{
    size_t n = 0;
    if (s != NULL) {
        while (n < max && s[n] != '\0') {
            n++;
        }
        memcpy(p + 1, s, n);
    }
    p[0] = (uint8_t)n;
    return n + 1;
}

static void handle_hello(tinyhar_dev_t *dev, uint8_t seq)
{
    const tinyhar_config_t *cfg = dev->cfg;
    uint8_t *p = payload_out(dev);
    size_t o = 0;
    p[o++] = TINYHAR_PROTOCOL_VERSION;
    p[o++] = (uint8_t)((dev->streaming ? 1u : 0u) | (dev->plat.infer != NULL ? 2u : 0u));
    put_u32(p + o, cfg->model_crc32);
    put_u32(p + o + 4, cfg->arena_bytes);
    put_u16(p + o + 8, cfg->window);
    put_u16(p + o + 10, cfg->stride);
    put_u16(p + o + 12, cfg->channels);
    put_u16(p + o + 14, cfg->n_classes);
    put_f32(p + o + 16, cfg->rate_hz);
    put_u16(p + o + 20, TINYHAR_MAX_PAYLOAD);
    put_u32(p + o + 22, dev->samples_total);
    o += 26;
    o += put_tensor(p + o, cfg->input_dtype, cfg->input_ndims, cfg->input_dims, cfg->input_scale,
                    cfg->input_zero_point);
    o += put_tensor(p + o, cfg->output_dtype, cfg->output_ndims, cfg->output_dims,
                    cfg->output_scale, cfg->output_zero_point);
    o += put_string(p + o, TINYHAR_CORE_VERSION, 32);
    o += put_string(p + o, cfg->firmware_version, 64);
    o += put_string(p + o, cfg->board_name, 64);
    p[o++] = dev->runner_status;
    put_u32(p + o, dev->arena_used);
    o += 4;
    p[o++] = cfg->device_kind;
    send_frame(dev, TINYHAR_MSG_HELLO | TINYHAR_REPLY, seq, o);
}

static void handle_labels(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    const tinyhar_config_t *cfg = dev->cfg;
    uint8_t *p = payload_out(dev);
    size_t o = 3, first, i, slen;
    uint8_t count = 0;
    if (len != 1) {
        send_error(dev, seq, TINYHAR_MSG_LABELS, TINYHAR_ERR_BAD_LENGTH, 1);
        return;
    }
    first = pl[0];
    if (cfg->labels != NULL && first > cfg->n_classes) {
        send_error(dev, seq, TINYHAR_MSG_LABELS, TINYHAR_ERR_BAD_ARG, cfg->n_classes);
        return;
    }
    if (cfg->labels != NULL) {
        for (i = first; i < cfg->n_classes; i++) {
            const char *s = cfg->labels[i] != NULL ? cfg->labels[i] : "";
            slen = 0;
            while (slen < 255 && s[slen] != '\0') {
                slen++;
            }
            if (o + 1 + slen > TINYHAR_MAX_PAYLOAD) {
                break;
            }
            o += put_string(p + o, s, 255);
            count++;
        }
    }
    p[0] = (uint8_t)(cfg->labels != NULL ? cfg->n_classes : 0);
    p[1] = (uint8_t)first;
    p[2] = count;
    send_frame(dev, TINYHAR_MSG_LABELS | TINYHAR_REPLY, seq, o);
}

static const tinyhar_profile_t *g_profile; /* the runner's, when it has a profiler */

void tinyhar_set_profile(const tinyhar_profile_t *profile)
{
    g_profile = profile;
}

/* PROFILE: u16 first node -> u8 unit, u16 nodes, u16 first, u8 count, count x u32 */
static void handle_profile(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    uint8_t *p = payload_out(dev);
    const size_t most = (TINYHAR_MAX_PAYLOAD - 6u) / 4u;
    uint32_t first, nodes = 0, count = 0, i;
    uint8_t unit = TINYHAR_PROFILE_NONE;
    if (len != 2) {
        send_error(dev, seq, TINYHAR_MSG_PROFILE, TINYHAR_ERR_BAD_LENGTH, 2);
        return;
    }
    first = get_u16(pl);
    if (g_profile != NULL) {
        unit = g_profile->unit;
        nodes = g_profile->nodes;
    }
    if (first > nodes) {
        send_error(dev, seq, TINYHAR_MSG_PROFILE, TINYHAR_ERR_BAD_ARG, nodes);
        return;
    }
    count = nodes - first;
    count = count > most ? (uint32_t)most : count;
    count = count > 255u ? 255u : count;
    p[0] = unit;
    put_u16(p + 1, nodes);
    put_u16(p + 3, first);
    p[5] = (uint8_t)count;
    for (i = 0; i < count; i++) {
        put_u32(p + 6 + 4 * i, g_profile->counts[first + i]);
    }
    send_frame(dev, TINYHAR_MSG_PROFILE | TINYHAR_REPLY, seq, 6 + 4 * count);
}

static void send_status(tinyhar_dev_t *dev, uint8_t type, uint8_t seq)
{
    uint8_t *p = payload_out(dev);
    put_u32(p, dev->samples_total);
    put_u16(p + 4, dev->ring_fill);
    p[6] = (uint8_t)((dev->streaming ? TINYHAR_STATUS_STREAMING : 0u) |
                     (dev->recording ? TINYHAR_STATUS_RECORDING : 0u));
    send_frame(dev, (uint8_t)(type | TINYHAR_REPLY), seq, 7);
}

/* Send the samples waiting in record_buf as one RECORDING frame: u32 index of the first since
   RECORD_START, u16 n, u8 channels, then n x channels f32. */
static void record_flush(tinyhar_dev_t *dev)
{
    size_t ch = dev->cfg->channels, i, n = dev->record_fill;
    uint8_t *p = payload_out(dev);
    if (n == 0) {
        return;
    }
    put_u32(p, dev->record_total - (uint32_t)n);
    put_u16(p + 4, (uint32_t)n);
    p[6] = (uint8_t)ch;
    for (i = 0; i < n * ch; i++) {
        put_f32(p + 7 + 4 * i, dev->record_buf[i]);
    }
    dev->record_fill = 0;
    send_frame(dev, TINYHAR_MSG_RECORDING, dev->record_seq++, 7 + 4 * n * ch);
}

static void record_sample(tinyhar_dev_t *dev, const float *raw)
{
    size_t ch = dev->cfg->channels;
    memcpy(dev->record_buf + (size_t)dev->record_fill * ch, raw, sizeof(float) * ch);
    dev->record_fill++;
    dev->record_total++;
    if ((size_t)(dev->record_fill + 1u) * ch * 4u > TINYHAR_RECORD_BYTES) {
        record_flush(dev);
    }
}

/* RECORD_START (idempotent: a retried one keeps the count) and RECORD_STOP (sends what waits). */
static void set_recording(tinyhar_dev_t *dev, int on)
{
    if (on && !dev->recording) {
        dev->recording = 1;
        dev->record_fill = 0;
        dev->record_total = 0;
        dev->record_seq = 0;
    } else if (!on && dev->recording) {
        record_flush(dev);
        dev->recording = 0;
    }
}

/* Linearise the ring (oldest first) and preprocess it into dev->window. */
static void window_from_ring(tinyhar_dev_t *dev)
{
    const tinyhar_config_t *cfg = dev->cfg;
    size_t ch = cfg->channels, w = cfg->window, s;
    size_t start = (dev->ring_head + w - dev->ring_fill) % w;
    volatile float inv_scale = 1.0f / cfg->input_scale;
    dev->window_loaded = 0; /* the host's pieces are overwritten */
    for (s = 0; s < dev->ring_fill; s++) {
        const float *raw = dev->ring + ((start + s) % w) * ch;
        size_t c;
        for (c = 0; c < ch; c++) {
            dev->window[s * ch + c] = preprocess_value(cfg, raw, c, inv_scale);
        }
    }
}

/* Run the hook on dev->window. Returns 0 or an error code; *latency in microseconds. */
static int run_model(tinyhar_dev_t *dev, const int8_t *in, uint32_t *latency, int *hook_rc)
{
    const tinyhar_config_t *cfg = dev->cfg;
    uint32_t t0 = 0, t1 = 0;
    int rc;
    *latency = 0;
    *hook_rc = 0;
    if (dev->plat.infer == NULL) {
        return TINYHAR_ERR_BAD_STATE;
    }
    if (dev->plat.micros != NULL) {
        t0 = dev->plat.micros(dev->plat.ctx);
    }
    rc = dev->plat.infer(in, (size_t)cfg->window * cfg->channels, dev->output, cfg->n_classes,
                         dev->plat.ctx);
    if (dev->plat.micros != NULL) {
        t1 = dev->plat.micros(dev->plat.ctx);
    }
    *latency = t1 - t0;
    if (rc != 0) {
        *hook_rc = rc;
        return TINYHAR_ERR_INFER_FAILED;
    }
    return TINYHAR_OK;
}

static void send_result(tinyhar_dev_t *dev, uint8_t type, uint8_t seq, uint32_t latency,
                        int with_window)
{
    const tinyhar_config_t *cfg = dev->cfg;
    uint8_t *p = payload_out(dev);
    size_t o = 0, in_len = (size_t)cfg->window * cfg->channels;
    put_u32(p, latency);
    put_u32(p + 4, dev->samples_total);
    put_u16(p + 8, cfg->n_classes);
    o = 10;
    memcpy(p + o, dev->output, cfg->n_classes);
    o += cfg->n_classes;
    put_u16(p + o, with_window ? (uint32_t)in_len : 0u);
    o += 2;
    if (with_window) {
        memcpy(p + o, dev->window, in_len);
        o += in_len;
    }
    send_frame(dev, (uint8_t)(type | TINYHAR_REPLY), seq, o);
}

/* Copy a piece of the host's int8 window (u16 offset, then bytes) into dev->window. A piece may
   start anywhere up to the bytes already loaded, so a repeated piece is harmless; `last` requires
   the piece to end the window. Returns 1, or 0 after answering with an ERROR. */
static int load_piece(tinyhar_dev_t *dev, uint8_t type, uint8_t seq, const uint8_t *pl,
                      size_t len, int last)
{
    const tinyhar_config_t *cfg = dev->cfg;
    size_t in_len = (size_t)cfg->window * cfg->channels, offset, n;
    if (len < 2 + (last ? 0u : 1u)) {
        send_error(dev, seq, type, TINYHAR_ERR_BAD_LENGTH, last ? 2u : 3u);
        return 0;
    }
    offset = get_u16(pl);
    n = len - 2;
    if (offset > dev->window_loaded) {
        send_error(dev, seq, type, TINYHAR_ERR_WINDOW_NOT_FULL, dev->window_loaded);
        return 0;
    }
    if (offset + n > in_len || (last && offset + n != in_len)) {
        send_error(dev, seq, type, TINYHAR_ERR_BAD_LENGTH, (uint32_t)in_len);
        return 0;
    }
    memcpy(dev->window + offset, pl + 2, n);
    if (offset + n > dev->window_loaded) {
        dev->window_loaded = (uint16_t)(offset + n);
    }
    return 1;
}

static void handle_load(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    uint8_t *p = payload_out(dev);
    if (!load_piece(dev, TINYHAR_MSG_LOAD, seq, pl, len, 0)) {
        return;
    }
    put_u16(p, dev->window_loaded);
    send_frame(dev, TINYHAR_MSG_LOAD | TINYHAR_REPLY, seq, 2);
}

static void handle_infer(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    uint32_t latency;
    int rc, hook_rc;
    if (!load_piece(dev, TINYHAR_MSG_INFER, seq, pl, len, 1)) {
        return;
    }
    rc = run_model(dev, dev->window, &latency, &hook_rc);
    if (rc != TINYHAR_OK) {
        send_error(dev, seq, TINYHAR_MSG_INFER, (uint8_t)rc, (uint32_t)hook_rc);
        return;
    }
    send_result(dev, TINYHAR_MSG_INFER, seq, latency, 0);
}

static void handle_samples(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len,
                           uint32_t crc)
{
    const tinyhar_config_t *cfg = dev->cfg;
    size_t ch = cfg->channels, per = ch * 4, n, s, c;
    float raw[TINYHAR_MAX_CHANNELS];
    if (len == 0 || len % per != 0) {
        send_error(dev, seq, TINYHAR_MSG_SAMPLES, TINYHAR_ERR_BAD_LENGTH, (uint32_t)per);
        return;
    }
    if (dev->last_samples_valid && dev->last_samples_seq == seq && dev->last_samples_crc == crc) {
        send_status(dev, TINYHAR_MSG_SAMPLES, seq); /* a retry of the frame already applied */
        return;
    }
    n = len / per;
    for (s = 0; s < n; s++) {
        for (c = 0; c < ch; c++) {
            raw[c] = get_f32(pl + s * per + c * 4);
        }
        tinyhar_push_sample(dev, raw);
    }
    dev->last_samples_valid = 1;
    dev->last_samples_seq = seq;
    dev->last_samples_crc = crc;
    send_status(dev, TINYHAR_MSG_SAMPLES, seq);
}

static void handle_infer_raw(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    uint32_t latency;
    int rc, hook_rc;
    if (len != 1) {
        send_error(dev, seq, TINYHAR_MSG_INFER_RAW, TINYHAR_ERR_BAD_LENGTH, 1);
        return;
    }
    if ((pl[0] & (uint8_t)~TINYHAR_INFER_RAW_WITH_WINDOW) != 0) {
        send_error(dev, seq, TINYHAR_MSG_INFER_RAW, TINYHAR_ERR_BAD_ARG, pl[0]);
        return;
    }
    if (dev->ring_fill < dev->cfg->window) {
        send_error(dev, seq, TINYHAR_MSG_INFER_RAW, TINYHAR_ERR_WINDOW_NOT_FULL, dev->ring_fill);
        return;
    }
    window_from_ring(dev);
    rc = run_model(dev, dev->window, &latency, &hook_rc);
    if (rc != TINYHAR_OK) {
        send_error(dev, seq, TINYHAR_MSG_INFER_RAW, (uint8_t)rc, (uint32_t)hook_rc);
        return;
    }
    send_result(dev, TINYHAR_MSG_INFER_RAW, seq, latency,
                (pl[0] & TINYHAR_INFER_RAW_WITH_WINDOW) != 0);
}

static void handle_get_window(tinyhar_dev_t *dev, uint8_t seq, const uint8_t *pl, size_t len)
{
    const tinyhar_config_t *cfg = dev->cfg;
    size_t in_len = (size_t)cfg->window * cfg->channels, offset, n;
    uint8_t *p = payload_out(dev);
    if (len != 4) {
        send_error(dev, seq, TINYHAR_MSG_GET_WINDOW, TINYHAR_ERR_BAD_LENGTH, 4);
        return;
    }
    offset = get_u16(pl);
    n = get_u16(pl + 2);
    if (offset > in_len) {
        send_error(dev, seq, TINYHAR_MSG_GET_WINDOW, TINYHAR_ERR_BAD_ARG, (uint32_t)offset);
        return;
    }
    if (dev->ring_fill < cfg->window) {
        send_error(dev, seq, TINYHAR_MSG_GET_WINDOW, TINYHAR_ERR_WINDOW_NOT_FULL, dev->ring_fill);
        return;
    }
    if (n > in_len - offset) {
        n = in_len - offset;
    }
    if (n > TINYHAR_MAX_PAYLOAD - 8) {
        n = TINYHAR_MAX_PAYLOAD - 8;
    }
    window_from_ring(dev);
    put_u32(p, dev->samples_total);
    put_u16(p + 4, (uint32_t)offset);
    put_u16(p + 6, (uint32_t)n);
    memcpy(p + 8, dev->window + offset, n);
    send_frame(dev, TINYHAR_MSG_GET_WINDOW | TINYHAR_REPLY, seq, 8 + n);
}

static void dispatch(tinyhar_dev_t *dev, uint8_t type, uint8_t seq, const uint8_t *pl, size_t len,
                     uint32_t crc)
{
    switch (type) {
    case TINYHAR_MSG_HELLO:
        handle_hello(dev, seq);
        break;
    case TINYHAR_MSG_LABELS:
        handle_labels(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_INFER:
        handle_infer(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_SAMPLES:
        handle_samples(dev, seq, pl, len, crc);
        break;
    case TINYHAR_MSG_INFER_RAW:
        handle_infer_raw(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_GET_WINDOW:
        handle_get_window(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_LOAD:
        handle_load(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_PROFILE:
        handle_profile(dev, seq, pl, len);
        break;
    case TINYHAR_MSG_RESET_BUFFER:
    case TINYHAR_MSG_STREAM_START:
    case TINYHAR_MSG_STREAM_STOP:
    case TINYHAR_MSG_RECORD_START:
    case TINYHAR_MSG_RECORD_STOP:
        if (len != 0) {
            send_error(dev, seq, type, TINYHAR_ERR_BAD_LENGTH, 0);
            return;
        }
        if (type == TINYHAR_MSG_RESET_BUFFER) {
            buffer_reset(dev);
        } else if (type == TINYHAR_MSG_RECORD_START || type == TINYHAR_MSG_RECORD_STOP) {
            set_recording(dev, type == TINYHAR_MSG_RECORD_START);
        } else {
            tinyhar_set_streaming(dev, type == TINYHAR_MSG_STREAM_START);
        }
        send_status(dev, type, seq);
        break;
    default:
        send_error(dev, seq, type, TINYHAR_ERR_UNKNOWN_TYPE, 0);
        break;
    }
}

/* Check a COBS-decoded frame. Returns TINYHAR_OK or an error code; *seq_out is the frame's seq
   when the CRC holds, TINYHAR_SEQ_UNKNOWN otherwise. */
static int frame_check(const uint8_t *f, size_t n, uint8_t *seq_out, uint32_t *crc_out)
{
    uint32_t crc;
    *seq_out = TINYHAR_SEQ_UNKNOWN;
    if (n < TINYHAR_FRAME_OVERHEAD) {
        return TINYHAR_ERR_BAD_FRAME;
    }
    crc = tinyhar_crc32(0, f, n - TINYHAR_FRAME_CRC);
    if (crc != get_u32(f + n - TINYHAR_FRAME_CRC)) {
        return TINYHAR_ERR_BAD_CRC;
    }
    *crc_out = crc;
    *seq_out = f[2];
    if (f[0] != TINYHAR_PROTOCOL_VERSION) {
        return TINYHAR_ERR_BAD_VERSION;
    }
    if (get_u16(f + 3) != n - TINYHAR_FRAME_OVERHEAD) {
        return TINYHAR_ERR_BAD_LENGTH;
    }
    return TINYHAR_OK;
}

static void frame_complete(tinyhar_dev_t *dev)
{
    uint8_t seq, type;
    uint32_t crc = 0;
    int rc;
    if (dev->rx_overflow) {
        send_error(dev, TINYHAR_SEQ_UNKNOWN, 0, TINYHAR_ERR_TOO_LONG, TINYHAR_FRAME_MAX);
        return;
    }
    if (dev->rx_left != 0) {
        send_error(dev, TINYHAR_SEQ_UNKNOWN, 0, TINYHAR_ERR_BAD_FRAME, 0);
        return;
    }
    rc = frame_check(dev->rx, dev->rx_len, &seq, &crc);
    type = (rc == TINYHAR_OK || seq != TINYHAR_SEQ_UNKNOWN) ? dev->rx[1] : 0;
    if (rc != TINYHAR_OK) {
        send_error(dev, seq, type, (uint8_t)rc,
                   rc == TINYHAR_ERR_BAD_LENGTH ? (uint32_t)(dev->rx_len - TINYHAR_FRAME_OVERHEAD)
                                                : 0u);
        return;
    }
    dev->rx_frames++;
    dispatch(dev, type, seq, dev->rx + TINYHAR_FRAME_HEADER, dev->rx_len - TINYHAR_FRAME_OVERHEAD,
             crc);
}

static void rx_append(tinyhar_dev_t *dev, uint8_t b)
{
    if (dev->rx_len < sizeof dev->rx) {
        dev->rx[dev->rx_len++] = b;
    } else {
        dev->rx_overflow = 1;
    }
}

void tinyhar_rx(tinyhar_dev_t *dev, const uint8_t *data, size_t n)
{
    size_t i;
    if (dev->cfg == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        uint8_t b = data[i];
        if (b == 0) {
            if (dev->rx_started) {
                frame_complete(dev);
            }
            rx_reset(dev);
        } else if (dev->rx_left == 0) {
            if (dev->rx_started && dev->rx_code != 0xFF) {
                rx_append(dev, 0);
            }
            dev->rx_code = b;
            dev->rx_left = (uint8_t)(b - 1);
            dev->rx_started = 1;
        } else {
            rx_append(dev, b);
            dev->rx_left--;
        }
    }
}

void tinyhar_set_streaming(tinyhar_dev_t *dev, int on)
{
    dev->streaming = on ? 1u : 0u;
    /* the first prediction comes as soon as the window is full */
    dev->since_prediction = dev->cfg != NULL ? dev->cfg->stride : 0u;
}

void tinyhar_set_runner_info(tinyhar_dev_t *dev, int status, uint32_t arena_used)
{
    dev->runner_status = (uint8_t)(status < 0 || status > 255 ? 255 : status);
    dev->arena_used = arena_used;
}

int tinyhar_is_streaming(const tinyhar_dev_t *dev)
{
    return dev->streaming ? 1 : 0;
}

int tinyhar_is_recording(const tinyhar_dev_t *dev)
{
    return dev->recording ? 1 : 0;
}

static void stream_predict(tinyhar_dev_t *dev)
{
    const tinyhar_config_t *cfg = dev->cfg;
    uint8_t *p;
    uint32_t latency;
    int rc, hook_rc;
    uint16_t k, best = 0;
    window_from_ring(dev);
    rc = run_model(dev, dev->window, &latency, &hook_rc);
    if (rc != TINYHAR_OK) {
        send_error(dev, dev->prediction_seq++, TINYHAR_MSG_PREDICTION, (uint8_t)rc,
                   (uint32_t)hook_rc);
        return;
    }
    for (k = 1; k < cfg->n_classes; k++) {
        if (dev->output[k] > dev->output[best]) {
            best = k;
        }
    }
    p = payload_out(dev);
    p[0] = (uint8_t)best;
    p[1] = (uint8_t)dev->output[best];
    put_u32(p + 2, latency);
    put_u32(p + 6, dev->samples_total);
    send_frame(dev, TINYHAR_MSG_PREDICTION, dev->prediction_seq++, 10);
}

void tinyhar_push_sample(tinyhar_dev_t *dev, const float *raw)
{
    const tinyhar_config_t *cfg = dev->cfg;
    if (cfg == NULL) {
        return;
    }
    memcpy(dev->ring + (size_t)dev->ring_head * cfg->channels, raw,
           sizeof(float) * cfg->channels);
    dev->ring_head = (uint16_t)((dev->ring_head + 1u) % cfg->window);
    if (dev->ring_fill < cfg->window) {
        dev->ring_fill++;
    }
    dev->samples_total++;
    if (dev->since_prediction < cfg->stride) {
        dev->since_prediction++;
    }
    if (dev->recording) {
        record_sample(dev, raw);
    }
    if (dev->streaming && dev->ring_fill == cfg->window && dev->since_prediction >= cfg->stride) {
        dev->since_prediction = 0;
        stream_predict(dev);
    }
}

/* ---- framing utilities -------------------------------------------------------------------- */
size_t tinyhar_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                            uint8_t *out, size_t out_cap)
{
    uint8_t raw[TINYHAR_FRAME_MAX];
    if (len > TINYHAR_MAX_PAYLOAD) {
        return 0;
    }
    raw[0] = TINYHAR_PROTOCOL_VERSION;
    raw[1] = type;
    raw[2] = seq;
    put_u16(raw + 3, (uint32_t)len);
    if (len > 0) {
        memcpy(raw + TINYHAR_FRAME_HEADER, payload, len);
    }
    put_u32(raw + TINYHAR_FRAME_HEADER + len, tinyhar_crc32(0, raw, TINYHAR_FRAME_HEADER + len));
    return cobs_encode(raw, TINYHAR_FRAME_OVERHEAD + len, out, out_cap);
}

int tinyhar_frame_decode(const uint8_t *enc, size_t n, uint8_t *type, uint8_t *seq,
                         uint8_t *payload, size_t payload_cap, size_t *payload_len)
{
    uint8_t raw[TINYHAR_FRAME_MAX];
    size_t i = 0, o = 0, plen;
    uint32_t crc = 0;
    int rc;
    if (n > 0 && enc[n - 1] == 0) {
        n--;
    }
    while (i < n) {
        uint8_t code = enc[i++];
        uint8_t k;
        if (code == 0 || (size_t)(code - 1) > n - i) {
            return TINYHAR_ERR_BAD_FRAME;
        }
        for (k = 1; k < code; k++) {
            if (enc[i] == 0) {
                return TINYHAR_ERR_BAD_FRAME;
            }
            if (o >= sizeof raw) {
                return TINYHAR_ERR_TOO_LONG;
            }
            raw[o++] = enc[i++];
        }
        if (code != 0xFF && i < n) {
            if (o >= sizeof raw) {
                return TINYHAR_ERR_TOO_LONG;
            }
            raw[o++] = 0;
        }
    }
    rc = frame_check(raw, o, seq, &crc);
    if (rc != TINYHAR_OK) {
        return rc;
    }
    plen = o - TINYHAR_FRAME_OVERHEAD;
    if (plen > payload_cap) {
        return TINYHAR_ERR_TOO_LONG;
    }
    *type = raw[1];
    if (plen > 0) {
        memcpy(payload, raw + TINYHAR_FRAME_HEADER, plen);
    }
    *payload_len = plen;
    return TINYHAR_OK;
}
