#include "ebp_device.h"

#include "ebp_crc32.h"

/* Appends little-endian fields to a payload; ok turns false (and stays) on overflow. */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool ok;
} writer_t;

static void w_u8(writer_t *w, uint8_t v)
{
    if (w->len >= w->cap) {
        w->ok = false;
        return;
    }
    w->p[w->len++] = v;
}

static void w_u16(writer_t *w, uint16_t v)
{
    w_u8(w, (uint8_t)v);
    w_u8(w, (uint8_t)(v >> 8));
}

static void w_u32(writer_t *w, uint32_t v)
{
    w_u16(w, (uint16_t)v);
    w_u16(w, (uint16_t)(v >> 16));
}

static void w_f32(writer_t *w, float f)
{
    union {
        float f;
        uint32_t u;
    } bits; /* IEEE-754 binary32 on every target we build for */
    bits.f = f;
    w_u32(w, bits.u);
}

static void w_str(writer_t *w, const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    if (n > 255) {
        w->ok = false;
        return;
    }
    w_u8(w, (uint8_t)n);
    for (size_t i = 0; i < n; i++) {
        w_u8(w, (uint8_t)s[i]);
    }
}

static uint32_t r_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void write_hello(const ebp_caps_t *caps, writer_t *w)
{
    w_str(w, caps->name);
    w_str(w, caps->version);
    w_u16(w, (uint16_t)EBP_MAX_PAYLOAD);
    w_u8(w, caps->n_sensors);
    for (uint8_t i = 0; i < caps->n_sensors; i++) {
        const ebp_sensor_t *s = &caps->sensors[i];
        w_u8(w, s->id);
        w_str(w, s->name);
        w_str(w, s->unit);
        w_f32(w, s->min);
        w_f32(w, s->max);
    }
    w_u8(w, caps->n_actuators);
    for (uint8_t i = 0; i < caps->n_actuators; i++) {
        const ebp_actuator_t *a = &caps->actuators[i];
        w_u8(w, a->id);
        w_str(w, a->name);
        w_str(w, a->unit);
        w_u8(w, a->kind);
        if (a->kind == EBP_ACT_RANGE) {
            w_u32(w, (uint32_t)a->min);
            w_u32(w, (uint32_t)a->max);
        } else {
            w_u8(w, a->n_values);
            for (uint8_t k = 0; k < a->n_values; k++) {
                w_u32(w, (uint32_t)a->values[k]);
            }
        }
    }
}

static int find_sensor(const ebp_caps_t *caps, uint8_t id)
{
    for (uint8_t i = 0; i < caps->n_sensors; i++) {
        if (caps->sensors[i].id == id) {
            return i;
        }
    }
    return -1;
}

static const ebp_actuator_t *find_actuator(const ebp_caps_t *caps, uint8_t id)
{
    for (uint8_t i = 0; i < caps->n_actuators; i++) {
        if (caps->actuators[i].id == id) {
            return &caps->actuators[i];
        }
    }
    return 0;
}

static bool value_allowed(const ebp_actuator_t *a, int32_t value)
{
    if (a->kind == EBP_ACT_RANGE) {
        return value >= a->min && value <= a->max;
    }
    for (uint8_t k = 0; k < a->n_values; k++) {
        if (a->values[k] == value) {
            return true;
        }
    }
    return false;
}

static uint8_t nack(writer_t *w, uint8_t code)
{
    w->len = 0;
    w_u8(w, code);
    return EBP_NACK;
}

static uint8_t reading(ebp_device_t *dev, int index, writer_t *w)
{
    const ebp_sensor_t *s = &dev->caps->sensors[index];
    float value;
    if (!dev->board->read_sensor(dev->board->ctx, s->id, &value)) {
        return nack(w, EBP_ERR_HARDWARE);
    }
    w_u8(w, s->id);
    w_f32(w, value);
    w_u32(w, dev->board->now_ms(dev->board->ctx));
    return EBP_READING;
}

/* Executes one (new) request, writes the response payload to w and returns its type. */
static uint8_t execute(ebp_device_t *dev, const ebp_msg_t *m, writer_t *w)
{
    const ebp_caps_t *caps = dev->caps;
    switch (m->type) {
    case EBP_HELLO:
        /* HELLO opens a session: forget the previous host's subscriptions. */
        for (unsigned i = 0; i < EBP_MAX_SENSORS; i++) {
            dev->subs[i].period_ms = 0;
        }
        if (m->len == 1 && m->payload[0] == EBP_HELLO_DIGEST) {
            w_u32(w, dev->caps_crc); /* a compact HELLO: the host checks it against its cache */
        } else {
            write_hello(caps, w);
        }
        return EBP_HELLO;
    case EBP_READ: {
        if (m->len != 1) {
            return nack(w, EBP_ERR_BAD_PAYLOAD);
        }
        int index = find_sensor(caps, m->payload[0]);
        return index < 0 ? nack(w, EBP_ERR_UNKNOWN_SENSOR) : reading(dev, index, w);
    }
    case EBP_SUBSCRIBE: {
        if (m->len != 5) {
            return nack(w, EBP_ERR_BAD_PAYLOAD);
        }
        int index = find_sensor(caps, m->payload[0]);
        uint32_t period = r_u32(m->payload + 1);
        if (index < 0) {
            return nack(w, EBP_ERR_UNKNOWN_SENSOR);
        }
        if (period != 0 && period < EBP_MIN_PERIOD_MS) {
            return nack(w, EBP_ERR_BAD_PERIOD);
        }
        dev->subs[index].period_ms = period;
        dev->subs[index].next_ms = dev->board->now_ms(dev->board->ctx); /* first reading at once */
        return EBP_ACK;
    }
    case EBP_COMMAND: {
        if (m->len != 5) {
            return nack(w, EBP_ERR_BAD_PAYLOAD);
        }
        const ebp_actuator_t *a = find_actuator(caps, m->payload[0]);
        int32_t value = (int32_t)r_u32(m->payload + 1);
        if (a == 0) {
            return nack(w, EBP_ERR_UNKNOWN_ACTUATOR);
        }
        if (!value_allowed(a, value)) {
            return nack(w, EBP_ERR_VALUE_NOT_ALLOWED);
        }
        if (!dev->board->set_actuator(dev->board->ctx, a->id, value, m->seq)) {
            return nack(w, EBP_ERR_HARDWARE);
        }
        return EBP_ACK;
    }
    case EBP_PING:
        for (uint16_t i = 0; i < m->len; i++) {
            w_u8(w, m->payload[i]);
        }
        return EBP_PONG;
    default: /* not a request (or unknown) */
        return nack(w, EBP_ERR_BAD_TYPE);
    }
}

static size_t encode(ebp_device_t *dev, uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload,
                     size_t len, uint8_t *out, size_t cap)
{
    ebp_msg_t msg = {EBP_VERSION, type, flags, seq, (uint16_t)len, payload};
    return ebp_frame_encode(&msg, dev->scratch, out, cap);
}

static void handle(ebp_device_t *dev, const ebp_msg_t *m)
{
    const ebp_board_t *board = dev->board;
    if (m->flags & EBP_FLAG_RESPONSE) {
        return; /* the host never answers the device; nothing to do */
    }
    if (m->version != EBP_VERSION) {
        uint8_t code = EBP_ERR_UNSUPPORTED_VERSION;
        size_t n = encode(dev, EBP_NACK, EBP_FLAG_RESPONSE, m->seq, &code, 1, dev->out, sizeof dev->out);
        board->write(board->ctx, dev->out, n);
        return;
    }
    if (dev->reply_len != 0 && m->seq == dev->reply_seq && m->type == dev->reply_type) {
        /* A retransmission: our answer was lost. Resend it; never execute twice. */
        dev->stats.duplicates++;
        board->write(board->ctx, dev->reply, dev->reply_len);
        return;
    }
    uint8_t body[EBP_MAX_PAYLOAD];
    writer_t w = {body, 0, sizeof body, true};
    uint8_t type = execute(dev, m, &w);
    if (!w.ok) {
        type = nack(&w, EBP_ERR_HARDWARE); /* cannot happen once init accepted the caps */
    }
    dev->reply_len = encode(dev, type, EBP_FLAG_RESPONSE, m->seq, body, w.len, dev->reply, sizeof dev->reply);
    dev->reply_seq = m->seq;
    dev->reply_type = m->type;
    board->write(board->ctx, dev->reply, dev->reply_len);
}

bool ebp_device_init(ebp_device_t *dev, const ebp_caps_t *caps, const ebp_board_t *board)
{
    dev->caps = caps;
    dev->board = board;
    ebp_rx_init(&dev->rx);
    dev->reply_len = 0;
    dev->reply_seq = 0;
    dev->reply_type = 0;
    dev->tx_seq = 0;
    dev->stats.frames_ok = 0;
    dev->stats.bad_frames = 0;
    dev->stats.duplicates = 0;
    for (unsigned i = 0; i < EBP_MAX_SENSORS; i++) {
        dev->subs[i].period_ms = 0;
        dev->subs[i].next_ms = 0;
    }
    if (caps->n_sensors > EBP_MAX_SENSORS) {
        return false;
    }
    writer_t w = {dev->scratch, 0, EBP_MAX_PAYLOAD, true};
    write_hello(caps, &w);
    dev->caps_crc = ebp_crc32(0, dev->scratch, w.len);
    return w.ok;
}

void ebp_device_feed(ebp_device_t *dev, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        ebp_msg_t msg;
        ebp_rx_result_t r = ebp_rx_feed(&dev->rx, data[i], &msg);
        if (r == EBP_RX_FRAME) {
            dev->stats.frames_ok++;
            handle(dev, &msg);
        } else if (r != EBP_RX_NONE) {
            dev->stats.bad_frames++;
        }
    }
}

static void send_unsolicited(ebp_device_t *dev, uint8_t type, const uint8_t *payload, size_t len)
{
    size_t n = encode(dev, type, 0, dev->tx_seq++, payload, len, dev->out, sizeof dev->out);
    dev->board->write(dev->board->ctx, dev->out, n);
}

void ebp_device_poll(ebp_device_t *dev)
{
    uint32_t now = dev->board->now_ms(dev->board->ctx);
    for (uint8_t i = 0; i < dev->caps->n_sensors; i++) {
        ebp_subscription_t *sub = &dev->subs[i];
        /* Signed difference keeps working when the millisecond clock wraps after 49 days. */
        if (sub->period_ms == 0 || (int32_t)(now - sub->next_ms) < 0) {
            continue;
        }
        uint8_t body[16];
        writer_t w = {body, 0, sizeof body, true};
        uint8_t type = reading(dev, i, &w);
        if (type == EBP_READING) {
            send_unsolicited(dev, EBP_READING, body, w.len);
        }
        sub->next_ms += sub->period_ms;
        if ((int32_t)(now - sub->next_ms) >= 0) {
            sub->next_ms = now + sub->period_ms; /* fell behind: skip, do not burst */
        }
    }
}

void ebp_device_log(ebp_device_t *dev, uint8_t level, const char *text)
{
    uint8_t body[EBP_MAX_PAYLOAD];
    size_t n = 1;
    body[0] = level;
    while (n < sizeof body && text[n - 1] != '\0') {
        body[n] = (uint8_t)text[n - 1];
        n++;
    }
    send_unsolicited(dev, EBP_LOG, body, n);
}
