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
 *
 * Storm mode (`{"op": "storm", ...}`, bench/storm.py): viewers that reconnect, fail over and
 * resume as live.js does, and measure their way back; described before main().
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
#define URL_SIZE 512
/* A FAILED reason: room for the longest, "cannot read url " and a whole URL_SIZE url, so that
 * none is cut short. */
#define WHY_SIZE (URL_SIZE + 64)

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
    int server; /* the pool's address it connects to (a storm viewer fails over to the second) */
    const char *why; /* why it was lost (a storm viewer tallies it) */
    int close_code;  /* the server's close code, or 0 when it sent none */
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

typedef struct {
    char host[64];
    int port;
    char path[256];
    char origin[256];
} address_t;

struct storm_viewer;

typedef struct pool {
    char key[256];
    address_t to[2]; /* a storm's viewers fail over from the first to the second */
    char *streams[MAX_STREAMS];
    int nstreams;
    int refill;
    viewer_t *viewers;
    int n;
    int dead;
    struct storm_viewer *storm; /* a storm's viewers (storm mode), else NULL */
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

static void storm_lost(viewer_t *v);

static void kill_viewer(viewer_t *v) {
    if (v->state == V_DEAD) return;
    if (v->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, v->fd, NULL);
        close(v->fd);
        v->fd = -1;
    }
    v->state = V_DEAD;
    if (v->pool->storm) storm_lost(v); /* it reconnects (storm mode) */
    else v->pool->dead++;
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

/* One batch of a points frame, located as bench/clients.py scan_batches reads it (stream,
 * prev, id, number of `t` values); nothing is decoded but the id. */
typedef struct {
    const char *stream; /* its slug, stream_len long, in the frame */
    size_t stream_len;
    int has_prev;
    char prev[64]; /* "" when `prev` is null */
    const char *id; /* its text, id_len long, in the frame */
    size_t id_len;
    long long ms, seq; /* the id's two parts */
    char *t, *t_end;   /* the `t` values, between the brackets */
    long long points;  /* how many `t` values */
    char *end;         /* where the next batch starts, or the frame ends */
} batch_t;

/* The next batch of a frame from *at on (up to `end`): fills `b`, moves *at past it and
 * returns 1; 0 when no batch is left, or one is cut short (the frame's rest is not read). */
static int next_batch(char **at, char *end, batch_t *b) {
    char *start = memmem(*at, (size_t)(end - *at), BATCH, sizeof BATCH - 1);
    if (!start) return 0;
    char *name = start + sizeof BATCH - 1;
    char *e = memchr(name, '"', (size_t)(end - name));
    if (!e) return 0;
    b->stream = name;
    b->stream_len = (size_t)(e - name);
    char *q = e + strlen("\",\"prev\":");
    if (end - q < 4) return 0;
    b->has_prev = strncmp(q, "null", 4) != 0;
    b->prev[0] = 0;
    if (b->has_prev) {
        char *pe = memchr(q + 1, '"', (size_t)(end - q - 1));
        if (!pe) return 0;
        size_t pl = (size_t)(pe - q - 1);
        if (pl >= sizeof b->prev) pl = sizeof b->prev - 1;
        memcpy(b->prev, q + 1, pl);
        b->prev[pl] = 0;
        q = pe + 1;
    } else {
        q += 4;
    }
    char *id = q + strlen(",\"id\":\"");
    if (id >= end) return 0;
    char *ide = memchr(id, '"', (size_t)(end - id));
    if (!ide) return 0;
    b->id = id;
    b->id_len = (size_t)(ide - id);
    char *dash;
    b->ms = strtoll(id, &dash, 10);
    b->seq = strtoll(dash + 1, NULL, 10);
    b->t = ide + strlen("\",\"t\":[");
    if (b->t >= end) return 0;
    b->t_end = memchr(b->t, ']', (size_t)(end - b->t));
    if (!b->t_end) return 0;
    b->points = 0;
    if (b->t_end > b->t) {
        b->points = 1;
        for (char *c = b->t; c < b->t_end; c++) b->points += *c == ',';
    }
    /* No slug, id or value holds BATCH (a string's quotes are escaped): the next one found
     * after `t` starts the next batch. */
    char *next = memmem(b->t_end, (size_t)(end - b->t_end), BATCH, sizeof BATCH - 1);
    b->end = next ? next : end;
    *at = b->end;
    return 1;
}

/* Whether a batch's id is at or before the last one held (ms, seq). */
static int seen(const batch_t *b, long long ms, long long seq) {
    return b->ms < ms || (b->ms == ms && b->seq <= seq);
}

/* Keeps a batch's id as the last one held, in a `size`-byte buffer. */
static void keep_id(const batch_t *b, char *text, size_t size) {
    size_t il = b->id_len < size ? b->id_len : size - 1;
    memcpy(text, b->id, il);
    text[il] = 0;
}

/* A points frame, as bench/clients.py receive_frame reads it. */
static void points_frame(viewer_t *v, char *text, size_t len, double now) {
    pool_t *p = v->pool;
    int in_window = win0 <= now && now < win1;
    if (in_window) v->frames_in_window++;
    char *at = text;
    batch_t b;
    while (next_batch(&at, text + len, &b)) {
        int si = stream_index(p, b.stream, b.stream_len);
        if (si < 0) continue;
        last_t *last = &v->last[si];
        if (last->has && seen(&b, last->ms, last->seq)) continue;
        int same = last->has ? (b.has_prev && strcmp(b.prev, last->text) == 0) : !b.has_prev;
        if (!same) {
            v->gaps++;
            if (p->refill) {
                v->resubscribes++;
                if (subscribe(v, p->streams[si], last->has ? last->text : NULL) < 0) kill_viewer(v);
                continue;
            }
        }
        keep_id(&b, last->text, sizeof last->text);
        last->ms = b.ms, last->seq = b.seq, last->has = 1;
        counted(v, b.points);
        if (in_window) {
            v->in_window += b.points;
            if (v->sample && b.points) {
                double ms_now = now * 1000;
                char *c = b.t;
                while (c < b.t_end) {
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

static void storm_message(viewer_t *v, char *text, size_t len, double now);

static void message(viewer_t *v, char *text, size_t len, double now) {
    static const char points[] = "{\"op\":\"points\",\"data\":[";
    if (v->pool->storm) {
        storm_message(v, text, len, now);
        return;
    }
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
        if (opcode == 8) {
            v->why = "close";
            v->close_code = len >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : 0;
            return -1;
        }
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

static void storm_opened(viewer_t *v);

static void handshake_done(viewer_t *v) {
    pool_t *p = v->pool;
    if (p->storm) {
        storm_opened(v);
        return;
    }
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
            v->why = error == ECONNREFUSED ? "ConnectionRefusedError" : "OSError";
            kill_viewer(v);
            return;
        }
        address_t *to = &v->pool->to[v->server];
        char request[1024];
        int n = snprintf(request, sizeof request,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                         "Origin: %s\r\n\r\n",
                         to->path, to->host, to->port, to->origin);
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = v};
        epoll_ctl(ep, EPOLL_CTL_MOD, v->fd, &event);
        v->state = V_HANDSHAKE;
        if (send_all(v->fd, request, (size_t)n) < 0) {
            v->why = "OSError";
            kill_viewer(v);
        }
        return;
    }
    if (v->cap - v->len < READ_CHUNK) {
        v->cap = v->len + 4 * READ_CHUNK;
        v->buf = realloc(v->buf, v->cap);
    }
    ssize_t n = recv(v->fd, v->buf + v->len, v->cap - v->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        v->why = v->state == V_HANDSHAKE ? "InvalidStatus" : "close";
        kill_viewer(v);
        return;
    }
    v->len += (size_t)n;
    double now = now_s();
    if (v->state == V_HANDSHAKE) {
        char *end = memmem(v->buf, v->len, "\r\n\r\n", 4);
        if (!end) return;
        if (v->len < 12 || memcmp(v->buf + 9, "101", 3) != 0) {
            v->why = "InvalidStatus";
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
    address_t *to = &p->to[v->server];
    v->why = NULL;
    v->close_code = 0;
    v->len = v->msg_len = 0;
    v->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (v->fd < 0) {
        v->state = V_CONNECTING; /* so that kill_viewer counts it */
        v->why = "OSError";
        kill_viewer(v);
        return;
    }
    int one = 1;
    setsockopt(v->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to->port)};
    inet_pton(AF_INET, to->host, &address.sin_addr);
    v->state = V_CONNECTING;
    struct epoll_event event = {.events = EPOLLOUT, .data.ptr = v};
    epoll_ctl(ep, EPOLL_CTL_ADD, v->fd, &event);
    if (connect(v->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        v->why = errno == ECONNREFUSED ? "ConnectionRefusedError" : "OSError";
        kill_viewer(v);
    }
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
            v->why = "close";
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

/* Puts a line poll_once returned back in front of stdin's, for the next read (and frees it). */
static void unread_line(char *line) {
    size_t l = strlen(line);
    memmove(stdin_buf + l + 1, stdin_buf, stdin_len);
    memcpy(stdin_buf, line, l);
    stdin_buf[l] = '\n';
    stdin_len += l + 1;
    free(line);
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

/* The pool's streams from a command's "streams": ["a", "b", ...] (at most MAX_STREAMS). */
static void read_streams(const char *command, pool_t *p) {
    const char *at = jfind(command, "streams");
    if (!at || *at != '[') return;
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

static pool_t *take_pool(const char *key) {
    for (int i = 0; i < npools; i++)
        if (strcmp(pools[i]->key, key) == 0) {
            pool_t *p = pools[i];
            pools[i] = pools[--npools];
            return p;
        }
    return NULL;
}

static int read_url(const char *url, address_t *to) {
    if (sscanf(url, "ws://%63[^:/]:%d%255s", to->host, &to->port, to->path) < 2) return 0;
    if (!to->path[0]) strcpy(to->path, "/");
    return 1;
}

static pool_t *new_pool(const char *line, char *why, size_t why_size) {
    pool_t *p = calloc(1, sizeof *p);
    char url[URL_SIZE], protocol[32];
    jstr(line, "pool", p->key, sizeof p->key);
    jstr(line, "url", url, sizeof url);
    jstr(line, "origin", p->to[0].origin, sizeof p->to[0].origin);
    jstr(line, "protocol", protocol, sizeof protocol);
    p->refill = strcmp(protocol, "livecharts") == 0;
    if (!p->refill && strcmp(protocol, "batches") != 0) {
        snprintf(why, why_size, "the compiled client speaks livecharts and batches, not %s", protocol);
        free(p);
        return NULL;
    }
    if (!read_url(url, &p->to[0])) {
        snprintf(why, why_size, "cannot read url %s", url);
        free(p);
        return NULL;
    }
    read_streams(line, p);
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
        if (line) unread_line(line); /* no command comes while a run connects; keep it for later */
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

/* ---- storm mode: bench/storm.py's viewers ------------------------------------------------ *
 *
 * One command, `{"op": "storm", "urls": [first, second], "origins": [...], "streams": [...],
 * "viewers": N, "reload": false}`, starts N viewers at once, viewer i watching streams[i % len]. Each is a
 * browser tab running live.js: it subscribes with `after` = the last id it holds (null at
 * first), takes batches by protocol.js decideBatch (drop what it has seen, apply what follows
 * its last id, re-subscribe with `after` when one is missing, at most once per 5 s while the
 * answer is awaited), empties its chart on `gap`, and when its socket closes reconnects after
 * backoff.js's delay (full jitter: uniform under 0.5 s x 2^attempt, capped at 15 s; a socket
 * that stayed open 10 s starts over at attempt 0) to the first address, else at once the second
 * (a proxy's failover), else it backs off again; with `reload` it comes back as a reloaded
 * page (an empty chart, `after` null). Then:
 *   `{"op": "back", "since": T, "within": S}`: waits until every viewer holds a point generated
 *     after T (epoch s), at most S s; answers `BACK {"back": k, "viewers": N}`.
 *   `{"op": "stop", "windows": PATH, "since": [T...]}`: closes every socket; answers
 *     `RESULT {...}`: per T the seconds from T until each viewer received a point generated
 *     after it (null: never), every `subscribed` answer as [address index, epoch s], the closes
 *     by reason, and the points lost / repeated against the windows in PATH (per stream a line
 *     `slug count`, then count lines `t y` as the wire writes them).
 */

#define STORM_BASE_S 0.5
#define STORM_CAP_S 15.0
#define STORM_STABLE_S 10.0
#define RESYNC_TIMEOUT_S 5.0
#define OPEN_TIMEOUT_S 10.0
#define MAX_REASONS 16

typedef struct {
    long long t_us;
    double y;
} spoint_t;

typedef struct {
    double at;        /* when it arrived (epoch s) */
    double newest_ms; /* its newest point's time */
} sbatch_t;

typedef struct storm_viewer {
    int stream;
    int attempt;
    double opened;  /* monotonic s the socket opened; 0: not open */
    double due;     /* monotonic s of the next connect; 0: none */
    double started; /* monotonic s the connect began */
    double resync;  /* monotonic s a re-subscribe for a missed batch went out; 0: none */
    int has_last;
    char last[64];
    long long last_ms, last_seq;
    spoint_t *points;
    size_t npoints, cappoints;
    sbatch_t *batches;
    size_t nbatches, capbatches;
    int back;
} storm_viewer_t;

static struct {
    pool_t *pool;
    int reload;   /* viewers come back as reloaded pages: an empty chart, `after` null */
    double since; /* the `back` being waited for (epoch s), or 1e300 */
    int back;
    double *subscribed; /* pairs: address index, epoch s */
    size_t nsubscribed, capsubscribed;
    char reasons[MAX_REASONS][32];
    long long reason_counts[MAX_REASONS];
    int nreasons;
} storm;

static void *grow(void *array, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return array;
    *cap = *cap ? 2 * *cap : 64;
    if (*cap < need) *cap = need;
    return realloc(array, *cap * size);
}

static void tally(const char *reason) {
    for (int i = 0; i < storm.nreasons; i++)
        if (strcmp(storm.reasons[i], reason) == 0) {
            storm.reason_counts[i]++;
            return;
        }
    if (storm.nreasons == MAX_REASONS) return;
    snprintf(storm.reasons[storm.nreasons], sizeof storm.reasons[0], "%s", reason);
    storm.reason_counts[storm.nreasons++] = 1;
}

static storm_viewer_t *storm_of(viewer_t *v) { return &v->pool->storm[v - v->pool->viewers]; }

/* backoff.js Backoff.closed: the delay before the next attempt. */
static double backoff_delay(storm_viewer_t *s, double now) {
    if (s->opened > 0 && now - s->opened >= STORM_STABLE_S) s->attempt = 0;
    s->opened = 0;
    double bound = STORM_BASE_S * (double)(1LL << (s->attempt < 30 ? s->attempt : 30));
    if (bound > STORM_CAP_S) bound = STORM_CAP_S;
    s->attempt++;
    return drand48() * bound;
}

/* Called by kill_viewer: the socket is closed; tally why and plan the next connect. No
 * connect from here (a caller may still be reading the old socket's buffer). */
static void storm_lost(viewer_t *v) {
    storm_viewer_t *s = storm_of(v);
    char reason[32];
    if (v->why && strcmp(v->why, "close") == 0) {
        if (v->close_code) snprintf(reason, sizeof reason, "close %d", v->close_code);
        else snprintf(reason, sizeof reason, "close none");
    } else {
        snprintf(reason, sizeof reason, "%s", v->why ? v->why : "OSError");
    }
    tally(reason);
    double now = mono_s();
    if (s->opened == 0 && v->server == 0) {
        v->server = 1; /* the first address is down: the proxy tries the second at once */
        s->due = now;
        return;
    }
    v->server = 0;
    s->due = now + backoff_delay(s, now);
}

static void storm_subscribe(viewer_t *v) {
    storm_viewer_t *s = storm_of(v);
    if (subscribe(v, v->pool->streams[s->stream], s->has_last ? s->last : NULL) < 0) {
        v->why = "OSError";
        kill_viewer(v);
    }
}

static void storm_opened(viewer_t *v) {
    storm_viewer_t *s = storm_of(v);
    v->state = V_LIVE;
    s->opened = mono_s();
    s->resync = 0;
    if (storm.reload && s->has_last) {
        s->has_last = 0;
        s->npoints = 0;
    }
    storm_subscribe(v);
}

static void storm_back_check(storm_viewer_t *s, double newest_ms) {
    if (!s->back && newest_ms > storm.since * 1000) {
        s->back = 1;
        storm.back++;
    }
}

/* A wire time (ms, 1 us resolution) as whole microseconds. */
static long long to_us(double ms) { return (long long)(ms * 1000 + (ms >= 0 ? 0.5 : -0.5)); }

static int parse_numbers(const char *at, const char *end, long long *t_us, double *y, size_t room, int times) {
    size_t n = 0;
    while (at < end && n < room) {
        char *next;
        double value = strtod(at, &next);
        if (next == at) break;
        if (times) t_us[n++] = to_us(value);
        else y[n++] = value;
        at = next;
        if (at < end && *at == ',') at++;
    }
    return (int)n;
}

/* A points frame: each batch of the viewer's stream by protocol.js decideBatch. */
static void storm_points(viewer_t *v, char *text, size_t len, double now) {
    storm_viewer_t *s = storm_of(v);
    const char *slug = v->pool->streams[s->stream];
    size_t slug_len = strlen(slug);
    char *at = text;
    batch_t b;
    while (next_batch(&at, text + len, &b)) {
        if (b.stream_len != slug_len || memcmp(b.stream, slug, slug_len) != 0) continue;
        if (s->has_last) {
            if (seen(&b, s->last_ms, s->last_seq)) continue;
            if (!b.has_prev || strcmp(b.prev, s->last) != 0) {
                /* A batch went missing on the live path: ask again after the last one held. */
                double t = mono_s();
                if (s->resync > 0 && t - s->resync < RESYNC_TIMEOUT_S) continue;
                s->resync = t;
                storm_subscribe(v);
                if (v->state == V_DEAD) return;
                continue;
            }
        }
        char *y = memmem(b.t_end, (size_t)(b.end - b.t_end), ":[", 2); /* the first series' values */
        if (!y) return;
        y += 2;
        char *ye = memchr(y, ']', (size_t)(b.end - y));
        if (!ye) return;
        size_t room = b.points ? (size_t)b.points : 1;
        s->points = grow(s->points, &s->cappoints, s->npoints + room, sizeof *s->points);
        long long *t_us = malloc(room * sizeof *t_us);
        double *ys = malloc(room * sizeof *ys);
        int nt = b.t_end > b.t ? parse_numbers(b.t, b.t_end, t_us, NULL, room, 1) : 0;
        int ny = ye > y ? parse_numbers(y, ye, NULL, ys, room, 0) : 0;
        double newest_ms = -1;
        for (int i = 0; i < nt && i < ny; i++) {
            s->points[s->npoints++] = (spoint_t){t_us[i], ys[i]};
            if (t_us[i] / 1000.0 > newest_ms) newest_ms = t_us[i] / 1000.0;
        }
        free(t_us);
        free(ys);
        if (nt) {
            s->batches = grow(s->batches, &s->capbatches, s->nbatches + 1, sizeof *s->batches);
            s->batches[s->nbatches++] = (sbatch_t){now, newest_ms};
            storm_back_check(s, newest_ms);
        }
        keep_id(&b, s->last, sizeof s->last);
        s->last_ms = b.ms, s->last_seq = b.seq, s->has_last = 1;
        s->resync = 0;
    }
}

static void storm_message(viewer_t *v, char *text, size_t len, double now) {
    static const char points[] = "{\"op\":\"points\",\"data\":[";
    if (len >= sizeof points - 1 && memcmp(text, points, sizeof points - 1) == 0) {
        storm_points(v, text, len, now);
    } else if (op_is(text, len, "subscribed")) {
        storm.subscribed = grow(storm.subscribed, &storm.capsubscribed, storm.nsubscribed + 2, sizeof(double));
        storm.subscribed[storm.nsubscribed++] = v->server;
        storm.subscribed[storm.nsubscribed++] = now;
    } else if (op_is(text, len, "gap")) {
        storm_viewer_t *s = storm_of(v); /* live.js reset(): the backfill that follows refills */
        s->has_last = 0;
        s->resync = 0;
    }
}

/* Due connects and open timeouts; returns the ms until the next is due (at most 10). */
static int storm_timers(void) {
    pool_t *p = storm.pool;
    double now = mono_s(), next = now + 0.010;
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        storm_viewer_t *s = &p->storm[i];
        if (v->state == V_DEAD && s->due > 0) {
            if (s->due <= now) {
                s->due = 0;
                s->started = now;
                start_connect(v);
            } else if (s->due < next) {
                next = s->due;
            }
        } else if ((v->state == V_CONNECTING || v->state == V_HANDSHAKE) && now - s->started > OPEN_TIMEOUT_S) {
            v->why = "TimeoutError";
            kill_viewer(v);
        }
    }
    int ms = (int)((next - mono_s()) * 1000);
    return ms < 0 ? 0 : ms;
}

/* Runs the viewers until a command comes; returns it. */
static char *storm_wait(void) {
    for (;;) {
        int timeout = storm_timers();
        char *line = poll_once(timeout);
        if (line) return line;
        if (stdin_eof && !memchr(stdin_buf, '\n', stdin_len)) return NULL;
        usleep(PAUSE_US);
    }
}

static void storm_back(const char *command) {
    pool_t *p = storm.pool;
    double since = jnum(command, "since", 0), deadline = mono_s() + jnum(command, "within", 60);
    storm.since = since;
    storm.back = 0;
    for (int i = 0; i < p->n; i++) {
        storm_viewer_t *s = &p->storm[i];
        s->back = 0;
        for (size_t j = s->nbatches; j-- > 0 && s->batches[j].at > since;) storm_back_check(s, s->batches[j].newest_ms);
    }
    while (storm.back < p->n && mono_s() < deadline) {
        int timeout = storm_timers();
        char *line = poll_once(timeout);
        if (line) { /* no command comes while waiting; keep it for later */
            unread_line(line);
            break;
        }
        usleep(PAUSE_US);
    }
    printf("BACK {\"back\": %d, \"viewers\": %d}\n", storm.back, p->n);
    fflush(stdout);
    storm.since = 1e300;
}

static int spoint_order(const void *a, const void *b) {
    const spoint_t *x = a, *y = b;
    if (x->t_us != y->t_us) return x->t_us < y->t_us ? -1 : 1;
    return x->y < y->y ? -1 : x->y > y->y;
}

/* The windows file: per stream index, its points sorted. */
static spoint_t *windows[MAX_STREAMS];
static size_t window_len[MAX_STREAMS];

static int read_windows(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    char slug[256];
    long count;
    while (fscanf(file, "%255s %ld", slug, &count) == 2) {
        int si = stream_index(storm.pool, slug, strlen(slug));
        spoint_t *points = malloc((size_t)(count > 0 ? count : 1) * sizeof *points);
        for (long i = 0; i < count; i++) {
            double t, y;
            if (fscanf(file, "%lf %lf", &t, &y) != 2) {
                free(points);
                fclose(file);
                return 0;
            }
            points[i] = (spoint_t){to_us(t), y};
        }
        qsort(points, (size_t)count, sizeof *points, spoint_order);
        if (si < 0) {
            free(points);
            continue;
        }
        windows[si] = points;
        window_len[si] = (size_t)count;
    }
    fclose(file);
    return 1;
}

/* bench/storm.py exactness: points charted twice, and window points within the span the
 * viewer charted (from its first point, or the window's first if later, to its last) that it
 * never charted. */
static void exactness(storm_viewer_t *s, long long *lost, long long *repeated) {
    if (!s->npoints) return;
    spoint_t *shown = malloc(s->npoints * sizeof *shown);
    memcpy(shown, s->points, s->npoints * sizeof *shown);
    qsort(shown, s->npoints, sizeof *shown, spoint_order);
    for (size_t i = 1; i < s->npoints; i++) *repeated += spoint_order(&shown[i - 1], &shown[i]) == 0;
    spoint_t *window = windows[s->stream];
    size_t n = window_len[s->stream];
    if (n) {
        long long first = shown[0].t_us > window[0].t_us ? shown[0].t_us : window[0].t_us;
        long long last = shown[s->npoints - 1].t_us;
        for (size_t i = 0; i < n; i++)
            if (first <= window[i].t_us && window[i].t_us <= last &&
                !bsearch(&window[i], shown, s->npoints, sizeof *shown, spoint_order))
                (*lost)++;
    }
    free(shown);
}

static void storm_stop(const char *command) {
    pool_t *p = storm.pool;
    for (int i = 0; i < p->n; i++) {
        viewer_t *v = &p->viewers[i];
        if (v->fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, v->fd, NULL);
            close(v->fd);
            v->fd = -1;
        }
        v->state = V_DEAD;
        p->storm[i].due = 0;
    }
    char path[1024] = "";
    jstr(command, "windows", path, sizeof path);
    if (!read_windows(path)) {
        print_failed("cannot read the windows file");
        return;
    }
    long long lost = 0, repeated = 0, points = 0;
    for (int i = 0; i < p->n; i++) {
        exactness(&p->storm[i], &lost, &repeated);
        points += (long long)p->storm[i].npoints;
    }
    printf("RESULT {\"viewers\": %d, \"points\": %lld, \"lost\": %lld, \"repeated\": %lld, \"backs\": [", p->n, points,
           lost, repeated);
    const char *at = jfind(command, "since");
    if (at && *at == '[') at++;
    for (int k = 0; at && *at && *at != ']'; k++) {
        char *next;
        double since = strtod(at, &next);
        if (next == at) break;
        printf(k ? ", [" : "[");
        for (int i = 0; i < p->n; i++) {
            storm_viewer_t *s = &p->storm[i];
            size_t j = 0;
            while (j < s->nbatches && s->batches[j].newest_ms <= since * 1000) j++;
            if (i) printf(", ");
            if (j < s->nbatches) printf("%.4f", s->batches[j].at - since);
            else printf("null");
        }
        printf("]");
        at = next;
        while (*at == ',' || *at == ' ') at++;
    }
    printf("], \"subscribed\": [");
    for (size_t i = 0; i < storm.nsubscribed; i += 2)
        printf(i ? ", [%d, %.4f]" : "[%d, %.4f]", (int)storm.subscribed[i], storm.subscribed[i + 1]);
    printf("], \"closes\": {");
    for (int i = 0; i < storm.nreasons; i++)
        printf(i ? ", \"%s\": %lld" : "\"%s\": %lld", storm.reasons[i], storm.reason_counts[i]);
    printf("}}\n");
    fflush(stdout);
}

static void storm_run(const char *command) {
    pool_t *p = calloc(1, sizeof *p);
    char url[URL_SIZE];
    const char *urls = jfind(command, "urls"), *origins = jfind(command, "origins");
    if (!urls || *urls != '[' || !origins || *origins != '[') {
        print_failed("a storm needs urls and origins");
        return;
    }
    urls++, origins++;
    for (int k = 0; k < 2; k++) {
        while (*urls == ' ' || *urls == ',') urls++;
        while (*origins == ' ' || *origins == ',') origins++;
        if (!jstr_at(urls, url, sizeof url) || !read_url(url, &p->to[k]) ||
            !jstr_at(origins, p->to[k].origin, sizeof p->to[k].origin)) {
            print_failed("a storm needs two urls and two origins");
            free(p);
            return;
        }
        urls = strchr(urls + 1, '"') + 1;
        origins = strchr(origins + 1, '"') + 1;
    }
    read_streams(command, p);
    p->n = (int)jnum(command, "viewers", 0);
    if (p->nstreams == 0 || p->n <= 0) {
        print_failed("a storm needs streams and viewers");
        free(p);
        return;
    }
    p->viewers = calloc((size_t)p->n, sizeof *p->viewers);
    p->storm = calloc((size_t)p->n, sizeof *p->storm);
    double now = mono_s();
    for (int i = 0; i < p->n; i++) {
        p->viewers[i].fd = -1;
        p->viewers[i].pool = p;
        p->viewers[i].state = V_DEAD;
        p->storm[i].stream = i % p->nstreams;
        p->storm[i].due = now;
    }
    storm.pool = p;
    storm.since = 1e300;
    storm.reload = strstr(command, "\"reload\": true") != NULL;
    printf("STARTED\n");
    fflush(stdout);
    char *line;
    while ((line = storm_wait()) != NULL) {
        char op[16] = "";
        jstr(line, "op", op, sizeof op);
        if (strcmp(op, "back") == 0) {
            storm_back(line);
        } else if (strcmp(op, "stop") == 0) {
            storm_stop(line);
            free(line);
            break;
        }
        free(line);
    }
}

int main(void) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    srand((unsigned)getpid());
    srand48(getpid());
    ep = epoll_create1(0);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &event);
    char *line;
    while ((line = read_line()) != NULL) {
        char op[16] = "";
        jstr(line, "op", op, sizeof op);
        if (strcmp(op, "storm") == 0) {
            storm_run(line);
            free(line);
            return 0; /* one storm per process */
        }
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
            char key[256] = "", why[WHY_SIZE] = "";
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
