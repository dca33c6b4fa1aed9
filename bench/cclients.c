/* Viewer clients for the fan-out bench, compiled: bench/clients.py's `livecharts` and `batches`
 * protocols over epoll, thousands of sockets in one thread, no libraries.
 *
 * Built by bench/cclients.py (gcc -O2) into a cache directory and driven exactly as
 * `python -m bench.clients` is: one JSON command per line on stdin (`run`, `close`), answers
 * READY / RESULT / FAILED / CANCELLED / CLOSED on stdout (see bench/clients.py). The commands
 * come from bench/fanout.py, so their JSON is read by key (json.dumps's ", " and ": ").
 *
 * A viewer: a plain-TCP websocket client (handshake, masked text frames out, unmasked frames in,
 * pings answered), subscribed to every stream of its pool; each `points` frame is read like
 * bench/clients.py `scan_batches` (stream, prev, id, number of `t` values) without decoding
 * values; a latency-sampled viewer (one in viewers/40) also parses every `t` of the frames it
 * receives in the window. `livecharts` re-subscribes with `after` on a `prev` gap as live.js does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STREAMS 64
#define MAX_POOLS 64
#define CONNECT_CONCURRENCY 50
#define LATENCY_VIEWERS 40
#define READ_CHUNK 65536
#define PAUSE_US 1000

enum { V_CONNECTING, V_HANDSHAKE, V_SUBSCRIBING, V_LIVE, V_DEAD };

struct pool;

typedef struct {
    long long ms, seq;
    int has;
    char text[64];
} last_t;

typedef struct viewer {
    int fd;
    int state;
    int sample;
    int subscribed; /* answers still awaited while subscribing */
    struct pool *pool;
    char *buf;
    size_t len, cap;
    char *msg; /* a fragmented message being assembled */
    size_t msg_len, msg_cap;
    last_t last[MAX_STREAMS];
    long long received, in_window, frames_in_window, resubscribes, gaps;
    double *lat;
    size_t lat_len, lat_cap;
} viewer_t;

typedef struct pool {
    char key[256];
    char host[64];
    int port;
    char path[256];
    char origin[256];
    char *streams[MAX_STREAMS];
    int nstreams;
    int refill;
    viewer_t *viewers;
    int n;
    int dead;
} pool_t;

static int ep;
static pool_t *pools[MAX_POOLS];
static int npools;
/* The run being measured. */
static long long expect;
static long long remaining;
static double win0 = 1e300, win1 = 1e300;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- the commands' JSON, read by key ---------------------------------------------------- */

static const char *jfind(const char *line, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(line, pattern);
    return at ? at + strlen(pattern) : NULL;
}

static int jstr_at(const char *at, char *out, size_t size) {
    if (!at || *at != '"') return 0;
    at++;
    size_t i = 0;
    while (*at && *at != '"' && i + 1 < size) {
        if (*at == '\\' && at[1]) at++;
        out[i++] = *at++;
    }
    out[i] = 0;
    return 1;
}

static int jstr(const char *line, const char *key, char *out, size_t size) {
    return jstr_at(jfind(line, key), out, size);
}

static double jnum(const char *line, const char *key, double otherwise) {
    const char *at = jfind(line, key);
    return at ? strtod(at, NULL) : otherwise;
}

static void print_failed(const char *why) {
    printf("FAILED \"");
    for (const char *c = why; *c; c++) {
        if (*c == '"' || *c == '\\') putchar('\\');
        putchar(*c);
    }
    printf("\"\n");
    fflush(stdout);
}

/* ---- websocket ------------------------------------------------------------------------ */

static int send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                usleep(100);
                continue;
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_frame(int fd, int opcode, const char *payload, size_t len) {
    char head[14 + 4096];
    size_t h = 0;
    head[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (char)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = (char)(0x80 | 126);
        head[h++] = (char)(len >> 8);
        head[h++] = (char)len;
    } else {
        return -1; /* our messages are small */
    }
    uint32_t mask = (uint32_t)rand();
    unsigned char m[4] = {mask >> 24, mask >> 16, mask >> 8, mask};
    memcpy(head + h, m, 4);
    h += 4;
    if (len > sizeof head - h) return -1;
    for (size_t i = 0; i < len; i++) head[h + i] = payload[i] ^ m[i & 3];
    return send_all(fd, head, h + len);
}

static int subscribe(viewer_t *v, const char *stream, const char *after) {
    char text[512];
    int n;
    if (after)
        n = snprintf(text, sizeof text, "{\"op\": \"subscribe\", \"stream\": \"%s\", \"after\": \"%s\"}", stream, after);
    else
        n = snprintf(text, sizeof text, "{\"op\": \"subscribe\", \"stream\": \"%s\", \"after\": null}", stream);
    return send_frame(v->fd, 1, text, (size_t)n);
}

static void kill_viewer(viewer_t *v) {
    if (v->state == V_DEAD) return;
    if (v->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, v->fd, NULL);
        close(v->fd);
        v->fd = -1;
    }
    v->state = V_DEAD;
    v->pool->dead++;
}

static void counted(viewer_t *v, long long points) {
    long long before = v->received;
    v->received += points;
    if (before < expect && expect <= v->received) remaining--;
}

static int stream_index(pool_t *p, const char *name, size_t len) {
    for (int i = 0; i < p->nstreams; i++)
        if (strlen(p->streams[i]) == len && memcmp(p->streams[i], name, len) == 0) return i;
    return -1;
}

#define BATCH "{\"stream\":\""

/* A points frame, as bench/clients.py receive_frame reads it. */
static void points_frame(viewer_t *v, char *text, size_t len, double now) {
    pool_t *p = v->pool;
    int in_window = win0 <= now && now < win1;
    if (in_window) v->frames_in_window++;
    char *end_text = text + len;
    char *at = memmem(text, len, BATCH, sizeof BATCH - 1);
    while (at) {
        char *s = at + sizeof BATCH - 1;
        char *e = memchr(s, '"', (size_t)(end_text - s));
        if (!e) return;
        int si = stream_index(p, s, (size_t)(e - s));
        char *q = e + strlen("\",\"prev\":");
        char prev[64];
        int has_prev;
        if (strncmp(q, "null", 4) == 0) {
            has_prev = 0;
            q += 4;
        } else {
            char *pe = memchr(q + 1, '"', (size_t)(end_text - q - 1));
            if (!pe) return;
            size_t pl = (size_t)(pe - q - 1);
            if (pl >= sizeof prev) pl = sizeof prev - 1;
            memcpy(prev, q + 1, pl);
            prev[pl] = 0;
            has_prev = 1;
            q = pe + 1;
        }
        char *id = q + strlen(",\"id\":\"");
        char *ide = memchr(id, '"', (size_t)(end_text - id));
        if (!ide) return;
        char *t = ide + strlen("\",\"t\":[");
        char *te = memchr(t, ']', (size_t)(end_text - t));
        if (!te) return;
        long long points = 0;
        if (te > t) {
            points = 1;
            for (char *c = t; c < te; c++) points += *c == ',';
        }
        at = memmem(te, (size_t)(end_text - te), BATCH, sizeof BATCH - 1);
        if (si < 0) continue;
        last_t *last = &v->last[si];
        char *dash;
        long long ms = strtoll(id, &dash, 10), seq = strtoll(dash + 1, NULL, 10);
        if (last->has && (ms < last->ms || (ms == last->ms && seq <= last->seq))) continue;
        int same = last->has ? (has_prev && strcmp(prev, last->text) == 0) : !has_prev;
        if (!same) {
            v->gaps++;
            if (p->refill) {
                v->resubscribes++;
                if (subscribe(v, p->streams[si], last->has ? last->text : NULL) < 0) kill_viewer(v);
                continue;
            }
        }
        size_t il = (size_t)(ide - id);
        if (il >= sizeof last->text) il = sizeof last->text - 1;
        memcpy(last->text, id, il);
        last->text[il] = 0;
        last->ms = ms, last->seq = seq, last->has = 1;
        counted(v, points);
        if (in_window) {
            v->in_window += points;
            if (v->sample && points) {
                double ms_now = now * 1000;
                char *c = t;
                while (c < te) {
                    double value = strtod(c, &c);
                    if (v->lat_len == v->lat_cap) {
                        v->lat_cap = v->lat_cap ? 2 * v->lat_cap : 4096;
                        v->lat = realloc(v->lat, v->lat_cap * sizeof *v->lat);
                    }
                    v->lat[v->lat_len++] = ms_now - value;
                    if (*c == ',') c++;
                    else break;
                }
            }
        }
    }
}

/* Whether a message's "op" is `op` (compact JSON as the server writes it, or with spaces). */
static int op_is(const char *text, size_t len, const char *op) {
    const char *at = memmem(text, len, "\"op\":", 5);
    if (!at) return 0;
    at += 5;
    while (at < text + len && *at == ' ') at++;
    size_t n = strlen(op);
    return at + n + 2 <= text + len && *at == '"' && memcmp(at + 1, op, n) == 0 && at[n + 1] == '"';
}

static void message(viewer_t *v, char *text, size_t len, double now) {
    static const char points[] = "{\"op\":\"points\",\"data\":[";
    if (v->state == V_SUBSCRIBING) {
        /* As bench/clients.py: frames before every `subscribed` answer are only read. */
        if (op_is(text, len, "subscribed") && --v->subscribed == 0) v->state = V_LIVE;
        return;
    }
    if (len >= sizeof points - 1 && memcmp(text, points, sizeof points - 1) == 0)
        points_frame(v, text, len, now);
    else if (op_is(text, len, "gap"))
        v->gaps++;
}

/* Every complete frame in the viewer's buffer; returns -1 when the connection is done. */
static int frames(viewer_t *v, double now) {
    size_t at = 0;
    while (v->len - at >= 2) {
        unsigned char *b = (unsigned char *)v->buf + at;
        int fin = b[0] & 0x80, opcode = b[0] & 0x0f;
        uint64_t len = b[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (v->len - at < 4) break;
            len = ((uint64_t)b[2] << 8) | b[3];
            h = 4;
        } else if (len == 127) {
            if (v->len - at < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
            h = 10;
        }
        if (b[1] & 0x80) h += 4; /* a server does not mask; skip a key if one came */
        if (v->len - at < h + len) {
            size_t need = h + len;
            if (need > v->cap) {
                /* make room for the whole frame, keeping it at the start */
                memmove(v->buf, v->buf + at, v->len - at);
                v->len -= at;
                v->cap = need + READ_CHUNK;
                v->buf = realloc(v->buf, v->cap);
                return 0;
            }
            break;
        }
        char *payload = v->buf + at + h;
        if (opcode == 8) return -1;
        if (opcode == 9) {
            if (send_frame(v->fd, 10, payload, len) < 0) return -1;
        } else if (opcode == 0 || opcode == 1 || opcode == 2) {
            if (!fin || v->msg_len) {
                if (v->msg_len + len > v->msg_cap) {
                    v->msg_cap = v->msg_len + len + READ_CHUNK;
                    v->msg = realloc(v->msg, v->msg_cap);
                }
                memcpy(v->msg + v->msg_len, payload, len);
                v->msg_len += len;
                if (fin) {
                    message(v, v->msg, v->msg_len, now);
                    v->msg_len = 0;
                }
            } else {
                message(v, payload, len, now);
            }
            if (v->state == V_DEAD) return -1;
        }
        at += h + len;
    }
    if (at) {
        memmove(v->buf, v->buf + at, v->len - at);
        v->len -= at;
    }
    return 0;
}

static void handshake_done(viewer_t *v) {
    pool_t *p = v->pool;
    v->state = V_SUBSCRIBING;
    v->subscribed = p->nstreams;
    for (int i = 0; i < p->nstreams; i++)
        if (subscribe(v, p->streams[i], NULL) < 0) {
            kill_viewer(v);
            return;
        }
}

static void readable(viewer_t *v) {
    if (v->state == V_CONNECTING) {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(v->fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error) {
            kill_viewer(v);
            return;
        }
        pool_t *p = v->pool;
        char request[1024];
        int n = snprintf(request, sizeof request,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                         "Origin: %s\r\n\r\n",
                         p->path, p->host, p->port, p->origin);
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = v};
        epoll_ctl(ep, EPOLL_CTL_MOD, v->fd, &event);
        v->state = V_HANDSHAKE;
        if (send_all(v->fd, request, (size_t)n) < 0) kill_viewer(v);
        return;
    }
    if (v->cap - v->len < READ_CHUNK) {
        v->cap = v->len + 4 * READ_CHUNK;
        v->buf = realloc(v->buf, v->cap);
    }
    ssize_t n = recv(v->fd, v->buf + v->len, v->cap - v->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        kill_viewer(v);
        return;
    }
    v->len += (size_t)n;
    double now = now_s();
    if (v->state == V_HANDSHAKE) {
        char *end = memmem(v->buf, v->len, "\r\n\r\n", 4);
        if (!end) return;
        if (v->len < 12 || memcmp(v->buf + 9, "101", 3) != 0) {
            kill_viewer(v);
            return;
        }
        size_t head = (size_t)(end + 4 - v->buf);
        memmove(v->buf, v->buf + head, v->len - head);
        v->len -= head;
        handshake_done(v);
        if (v->state == V_DEAD) return;
    }
    if (frames(v, now) < 0) kill_viewer(v);
}

static void start_connect(viewer_t *v) {
    pool_t *p = v->pool;
    v->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (v->fd < 0) {
        v->state = V_DEAD;
        p->dead++;
        return;
    }
    int one = 1;
    setsockopt(v->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    inet_pton(AF_INET, p->host, &address.sin_addr);
    v->state = V_CONNECTING;
    struct epoll_event event = {.events = EPOLLOUT, .data.ptr = v};
    epoll_ctl(ep, EPOLL_CTL_ADD, v->fd, &event);
    if (connect(v->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) kill_viewer(v);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static char stdin_buf[1 << 20];
static size_t stdin_len;
static int stdin_eof;

/* One line from stdin, reading sockets meanwhile until `deadline` (monotonic; 0: none).
 * Returns a malloc'd line, or NULL at end of input or deadline. */
static char *poll_once(int timeout_ms) {
    struct epoll_event events[512];
    int n = epoll_wait(ep, events, 512, timeout_ms);
    char *line = NULL;
    /* Commands first: a command (the start time of a window) read in the same turn as frames
     * must take effect before them, or a busy client counts them outside the window. */
    for (int i = 0; i < n; i++) {
        if (events[i].data.ptr != NULL) continue;
        ssize_t got = read(0, stdin_buf + stdin_len, sizeof stdin_buf - stdin_len - 1);
        if (got <= 0) {
            stdin_eof = 1;
            epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
        } else {
            stdin_len += (size_t)got;
        }
    }
    /* With a whole command waiting, the sockets wait a turn (level-triggered: epoll reports
     * them again) so the command is carried out before their frames are read. */
    int command_waiting = memchr(stdin_buf, '\n', stdin_len) != NULL;
    for (int i = 0; i < n && !command_waiting; i++) {
        if (events[i].data.ptr == NULL) continue;
        viewer_t *v = events[i].data.ptr;
        if (v->state == V_DEAD) continue;
        if ((events[i].events & (EPOLLERR | EPOLLHUP)) && v->state != V_CONNECTING &&
            !(events[i].events & EPOLLIN)) {
            kill_viewer(v);
            continue;
        }
        readable(v);
    }
    char *nl = memchr(stdin_buf, '\n', stdin_len);
    if (nl) {
        size_t l = (size_t)(nl - stdin_buf);
        line = malloc(l + 1);
        memcpy(line, stdin_buf, l);
        line[l] = 0;
        memmove(stdin_buf, nl + 1, stdin_len - l - 1);
        stdin_len -= l + 1;
    }
    return line;
}

static char *read_line(void) {
    for (;;) {
        char *line = poll_once(stdin_len ? 0 : 50);
        if (line) return line;
        if (stdin_eof && !memchr(stdin_buf, '\n', stdin_len)) return NULL;
    }
}

static void free_pool(pool_t *p) {
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        if (v->fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, v->fd, NULL);
            close(v->fd);
        }
        free(v->buf);
        free(v->msg);
        free(v->lat);
    }
    for (int i = 0; i < p->nstreams; i++) free(p->streams[i]);
    free(p->viewers);
    free(p);
}

static pool_t *take_pool(const char *key) {
    for (int i = 0; i < npools; i++)
        if (strcmp(pools[i]->key, key) == 0) {
            pool_t *p = pools[i];
            pools[i] = pools[--npools];
            return p;
        }
    return NULL;
}

static pool_t *new_pool(const char *line, char *why, size_t why_size) {
    pool_t *p = calloc(1, sizeof *p);
    char url[512], protocol[32];
    jstr(line, "pool", p->key, sizeof p->key);
    jstr(line, "url", url, sizeof url);
    jstr(line, "origin", p->origin, sizeof p->origin);
    jstr(line, "protocol", protocol, sizeof protocol);
    p->refill = strcmp(protocol, "livecharts") == 0;
    if (!p->refill && strcmp(protocol, "batches") != 0) {
        snprintf(why, why_size, "the compiled client speaks livecharts and batches, not %s", protocol);
        free(p);
        return NULL;
    }
    if (sscanf(url, "ws://%63[^:/]:%d%255s", p->host, &p->port, p->path) < 2) {
        snprintf(why, why_size, "cannot read url %s", url);
        free(p);
        return NULL;
    }
    if (!p->path[0]) strcpy(p->path, "/");
    const char *at = jfind(line, "streams");
    if (at && *at == '[') {
        at++;
        while (*at == ' ') at++;
        while (*at == '"' && p->nstreams < MAX_STREAMS) {
            char name[256];
            jstr_at(at, name, sizeof name);
            p->streams[p->nstreams++] = strdup(name);
            at = strchr(at + 1, '"') + 1;
            while (*at == ',' || *at == ' ') at++;
        }
    }
    p->n = (int)jnum(line, "viewers", 0);
    p->viewers = calloc((size_t)p->n, sizeof *p->viewers);
    int step = p->n / LATENCY_VIEWERS > 1 ? p->n / LATENCY_VIEWERS : 1;
    for (int i = 0; i < p->n; i++) {
        p->viewers[i].fd = -1;
        p->viewers[i].pool = p;
        p->viewers[i].sample = i % step == 0;
        p->viewers[i].state = V_DEAD; /* not started */
    }
    return p;
}

/* Connects every viewer, CONNECT_CONCURRENCY at a time; 0 when all are live. */
static int connect_pool(pool_t *p, double seconds, char *why, size_t why_size) {
    double deadline = mono_s() + seconds;
    int started = 0;
    for (;;) {
        int live = 0, busy = 0;
        for (int i = 0; i < started; i++) {
            int s = p->viewers[i].state;
            live += s == V_LIVE;
            busy += s == V_CONNECTING || s == V_HANDSHAKE || s == V_SUBSCRIBING;
        }
        if (p->dead) {
            snprintf(why, why_size, "a viewer could not connect (%d of %d live)", live, p->n);
            return -1;
        }
        if (live == p->n) return 0;
        while (busy < CONNECT_CONCURRENCY && started < p->n) {
            start_connect(&p->viewers[started++]);
            busy++;
        }
        if (mono_s() > deadline) {
            snprintf(why, why_size, "%d of %d viewers connected", live, p->n);
            return -1;
        }
        char *line = poll_once(20);
        if (line) { /* no command comes while a run connects; keep it for later */
            size_t l = strlen(line);
            memmove(stdin_buf + l + 1, stdin_buf, stdin_len);
            memcpy(stdin_buf, line, l);
            stdin_buf[l] = '\n';
            stdin_len += l + 1;
            free(line);
        }
    }
}

static void run(pool_t *p, const char *command) {
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        v->received = v->in_window = v->frames_in_window = v->resubscribes = v->gaps = 0;
        v->lat_len = 0;
    }
    expect = (long long)jnum(command, "expect", 0);
    remaining = p->n;
    double warmup = jnum(command, "warmup", 1), seconds = jnum(command, "seconds", 3);
    double drain = jnum(command, "drain", 2);
    win0 = win1 = 1e300;
    printf("READY\n");
    fflush(stdout);
    char *line = read_line();
    if (!line || strncmp(line, "cancel", 6) == 0) {
        free(line);
        printf("CANCELLED\n");
        fflush(stdout);
        return;
    }
    double start = strtod(line, NULL);
    free(line);
    win0 = start + warmup;
    win1 = start + warmup + seconds;
    double cpu0 = cpu_s(), wall0 = mono_s();
    /* A pause after each turn: what arrives meanwhile is read together on the next, and the
     * server's send does not wake a client blocked in epoll_wait for every frame (on loopback
     * that wake-up is charged to the server's send; clients on other machines cost it nothing). */
    while (now_s() < win1) {
        poll_once(10);
        usleep(PAUSE_US);
    }
    double wall = mono_s() - wall0;
    double cpu = (cpu_s() - cpu0) / (wall > 0.1 ? wall : 0.1) * seconds;
    double end = win1 + drain;
    while (remaining > 0 && now_s() < end) {
        poll_once(10);
        usleep(PAUSE_US);
    }
    long long points = 0, frames_n = 0, lost = 0, complete = 0, resubscribes = 0, gaps = 0;
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        points += v->in_window;
        frames_n += v->frames_in_window;
        lost += v->received < expect ? expect - v->received : 0;
        complete += v->received >= expect;
        resubscribes += v->resubscribes;
        gaps += v->gaps;
    }
    printf("RESULT {\"viewers\": %d, \"points\": %lld, \"frames\": %lld, \"lost\": %lld, \"complete\": %lld, "
           "\"resubscribes\": %lld, \"gaps\": %lld, \"closed\": %d, \"cpu_seconds\": %.4f, \"latencies\": [",
           p->n, points, frames_n, lost, complete, resubscribes, gaps, p->dead, cpu);
    int first = 1;
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        for (size_t j = 0; j < v->lat_len; j++) {
            printf(first ? "%.3f" : ", %.3f", v->lat[j]);
            first = 0;
        }
    }
    printf("]}\n");
    fflush(stdout);
    win0 = win1 = 1e300;
}

int main(void) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    srand((unsigned)getpid());
    ep = epoll_create1(0);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &event);
    char *line;
    while ((line = read_line()) != NULL) {
        char op[16] = "";
        jstr(line, "op", op, sizeof op);
        if (strcmp(op, "close") == 0) {
            const char *at = jfind(line, "pools");
            while (at && (at = strchr(at, '"')) != NULL) {
                char key[256];
                jstr_at(at, key, sizeof key);
                pool_t *p = take_pool(key);
                if (p) free_pool(p);
                at = strchr(at + 1, '"') + 1;
            }
            printf("CLOSED\n");
            fflush(stdout);
        } else if (strcmp(op, "run") == 0) {
            char key[256] = "", why[300] = "";
            jstr(line, "pool", key, sizeof key);
            pool_t *p = take_pool(key);
            if (p && p->dead) {
                free_pool(p);
                p = NULL;
            }
            if (!p) {
                p = new_pool(line, why, sizeof why);
                if (!p || connect_pool(p, jnum(line, "connect_timeout", 120), why, sizeof why) < 0) {
                    if (p) free_pool(p);
                    print_failed(why);
                    free(line);
                    continue;
                }
            }
            if (npools < MAX_POOLS) pools[npools++] = p;
            run(p, line);
        }
        free(line);
    }
    return 0;
}
