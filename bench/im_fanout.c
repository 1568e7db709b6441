/*
 * im_fanout.c -- load generator for Parley's IM conversation server (SPEC.md 2).
 *
 * N clients REGISTER; once the first one sees all N online, it INVITEs the
 * other N-1 into a new conversation; each invitee JOINs the id its INVITATION
 * names and sends LIST_CONVERSATIONS, whose reply tells it the JOIN was handled
 * (a JOIN that works sends nothing back). Then every member sends M messages
 *
 *   SEND_MESSAGE [id,"T<send ns> S<sender> Q<seq> K<check>"]
 *
 * and every MESSAGE that comes back is checked: the conversation id, the
 * sender's name against the S field, the sequence range, the check value, no
 * duplicate per (receiver, sender, seq), and at the end no loss, neither to the
 * other members nor the copy the sender gets itself (SPEC 2.3: sender included).
 *
 * Flow control is a window per sender (-w W): a sender has at most W of its
 * messages that some other member has not received yet (the generator sees both
 * ends). Optionally -r R caps the total send rate (messages/s) for latency at a
 * fixed load (-w 0 then means no window).
 *
 *   deliveries/s = messages x (members - 1) / (last delivery - first send)
 *
 * (the sender's own copies are checked but not counted, so the figure compares
 * with the channel generator's, where senders get no copy.)
 *
 * One thread, one epoll set, non-blocking sockets, TCP_NODELAY; -Q sets
 * TCP_QUICKACK after every read. Bounded: -t seconds in all, -s seconds without
 * progress. Connects only to -h (default 127.0.0.1).
 *
 * Prints progress on stderr and one line on stdout:
 *   RESULT mode=im clients=.. msgs=.. window=.. ... rate=.. p50_us=.. p99_us=.. lost=.. ...
 * (gen_cpu_s, the generator's own CPU time, shows how close it is to being the limit.)
 * Exit status 0 only if every delivery arrived intact; 1 otherwise; 2 on bad usage.
 *
 *   gcc -O2 -Wall -o im_fanout bench/im_fanout.c
 *   ./im_fanout -p 6666 -n 50 -m 200 -w 8 -Q
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define MAX_LINE (1024 * 1024 + 1) /* what Parley's client accepts from a server */
#define NAME_MAX_LEN 32

enum state { DEAD = 0, CONNECTING, REGISTERING, ONLINE, JOINING, MEMBER };

struct client {
    int fd;
    enum state state;
    int polling_out;
    char *line; size_t line_len, line_cap;   /* a partial line carried between reads */
    char *out; size_t out_len, out_off, out_cap;
    uint32_t next_seq;   /* next message to send */
    uint32_t acked;      /* lowest own message some other member still lacks */
    uint64_t own_copies; /* own messages echoed back */
};

/* settings */
static const char *host = "127.0.0.1";
static int port, members = 10, messages = 10, window = 8, quickack, verbose;
static double rate_cap, time_limit = 60, stall_limit = 5;
static int connect_conc = 64;
static char prefix[12] = "u";

/* run state */
static struct client *cl;
static int epfd, started_connects, pending_connects;
static int registered, joined, conversation = -1, invited, sending;
static int saw_everyone;  /* client 0 saw an ONLINE_USERS with all N names */
static uint8_t *seen;     /* bit per (receiver, sender, seq) */
static uint16_t *reached; /* per (sender, seq): other members that got it */
static uint64_t sent, delivered, own_copies, dups, garbled, errors, other_lines, closed_early;
static uint64_t t_start, t_registered, t_joined, t_first_send, t_last_delivery, t_progress;
static const char *stop = "complete";
static char *rbuf;

/* latency histogram: 1 us buckets below 64 ms, then 256 us buckets up to ~16.8 s */
#define FINE 65536
#define COARSE 65536
static uint64_t hist[FINE + COARSE], lat_count, lat_total, lat_max;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void record_latency(uint64_t us) {
    size_t b = us < FINE ? us : FINE + (us - FINE) / 256;
    if (b >= FINE + COARSE) b = FINE + COARSE - 1;
    hist[b]++;
    lat_count++;
    lat_total += us;
    if (us > lat_max) lat_max = us;
}

static uint64_t percentile(double p) {
    if (lat_count == 0) return 0;
    uint64_t rank = (uint64_t)(p * (double)(lat_count - 1)), sum = 0;
    for (size_t b = 0; b < FINE + COARSE; b++) {
        sum += hist[b];
        if (sum > rank) return b < FINE ? b : FINE + (b - FINE) * 256 + 128;
    }
    return lat_max;
}

/* FNV-1a over the three numbers: garbling any digit breaks it */
static uint32_t check_value(uint64_t ns, uint32_t sender, uint32_t seq) {
    uint64_t h = 1469598103934665603ull, v[3] = { ns, sender, seq };
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 8; k++) { h ^= (v[i] >> (8 * k)) & 0xff; h *= 1099511628211ull; }
    return (uint32_t)(h ^ (h >> 32));
}

static void fail(const char *what) { perror(what); exit(2); }

static void *grow(void *p, size_t *cap, size_t need) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    p = realloc(p, c);
    if (!p) fail("realloc");
    *cap = c;
    return p;
}

static int name_of(int i, char *buf) { return sprintf(buf, "%s%05d", prefix, i); }

/* ---------- sockets ---------- */

static void watch(struct client *c, int out) {
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - cl) };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->polling_out = out;
}

static void drop(struct client *c, const char *why) {
    if (c->state == DEAD) return;
    if (verbose) fprintf(stderr, "client %d closed: %s\n", (int)(c - cl), why);
    if (c->state == CONNECTING || c->state == REGISTERING) pending_connects--;
    c->state = DEAD;
    closed_early++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void queue_out(struct client *c, const char *data, size_t len) {
    c->out = grow(c->out, &c->out_cap, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void flush_out(struct client *c) {
    if (c->state == DEAD || c->state == CONNECTING) return;
    while (c->out_off < c->out_len) {
        ssize_t k = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (k > 0) { c->out_off += (size_t)k; continue; }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        drop(c, "write failed");
        return;
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    int want = c->out_len > 0;
    if (want != c->polling_out) watch(c, want);
}

static void say(struct client *c, const char *line) {
    queue_out(c, line, strlen(line));
    flush_out(c);
}

static void open_client(int i) {
    struct client *c = &cl[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) fail("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) { fprintf(stderr, "bad -h %s\n", host); exit(2); }
    c->fd = fd;
    c->state = CONNECTING;
    pending_connects++;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
    c->polling_out = 1;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) drop(c, "connect");
}

/* ---------- parsing what the server sends ---------- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

/* a JSON string without escapes (all this generator sends); sets [*s, *s + *n) */
static const char *json_plain_string(const char *p, const char *end, const char **s, size_t *n) {
    if (p >= end || *p != '"') return NULL;
    const char *q = ++p;
    while (q < end && *q != '"') { if (*q == '\\') return NULL; q++; }
    if (q >= end) return NULL;
    *s = p; *n = (size_t)(q - p);
    return q + 1;
}

static const char *json_uint(const char *p, const char *end, uint64_t *v) {
    uint64_t x = 0; int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 20) { x = x * 10 + (uint64_t)(*p++ - '0'); digits++; }
    if (!digits) return NULL;
    *v = x;
    return p;
}

static const char *expect_char(const char *p, const char *end, char ch) {
    p = skip_ws(p, end);
    return p < end && *p == ch ? skip_ws(p + 1, end) : NULL;
}

/* our own name format back to its index, or -1 */
static int index_of_name(const char *s, size_t n) {
    size_t pl = strlen(prefix);
    if (n <= pl || n > NAME_MAX_LEN || memcmp(s, prefix, pl) != 0) return -1;
    int v = 0;
    for (size_t i = pl; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > 10000000) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < members ? v : -1;
}

/* "T<ns> S<sender> Q<seq> K<check>": 0 if well formed */
static int parse_payload(const char *p, const char *end, uint64_t f[4]) {
    static const char tags[4] = { 'T', 'S', 'Q', 'K' };
    for (int i = 0; i < 4; i++) {
        if (i > 0) { if (p >= end || *p != ' ') return -1; p++; }
        if (p >= end || *p != tags[i]) return -1;
        if (!(p = json_uint(p + 1, end, &f[i]))) return -1;
    }
    return p == end ? 0 : -1;
}

static void on_message(int r, const char *p, const char *end, uint64_t t) {
    uint64_t id, f[4];
    const char *name, *text; size_t name_len, text_len;
    if (!(p = expect_char(p, end, '[')) || !(p = json_uint(p, end, &id)) || !(p = expect_char(p, end, ','))
        || !(p = json_plain_string(p, end, &name, &name_len)) || !(p = expect_char(p, end, ','))
        || !(p = json_plain_string(p, end, &text, &text_len)) || !(p = expect_char(p, end, ']')) || p != end
        || (int64_t)id != conversation || parse_payload(text, text + text_len, f) != 0) {
        garbled++;
        return;
    }
    uint64_t ns = f[0], s = f[1], q = f[2];
    if (s >= (uint64_t)members || q >= (uint64_t)messages || index_of_name(name, name_len) != (int)s
        || f[3] != check_value(ns, (uint32_t)s, (uint32_t)q) || ns > t || q >= cl[s].next_seq) {
        garbled++;
        return;
    }
    uint64_t bit = ((uint64_t)r * (uint64_t)members + s) * (uint64_t)messages + q;
    if (seen[bit >> 3] & (1u << (bit & 7))) { dups++; return; }
    seen[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    t_progress = t;
    if ((int)s == r) { own_copies++; cl[r].own_copies++; return; }
    delivered++;
    t_last_delivery = t;
    record_latency((t - ns) / 1000);
    if (++reached[s * (uint64_t)messages + q] == members - 1) {
        struct client *sc = &cl[s];
        while (sc->acked < sc->next_seq && reached[s * (uint64_t)messages + sc->acked] == members - 1) sc->acked++;
    }
}

/* count the entries of ONLINE_USERS {"name":"status",...} that are our names */
static int count_our_names(const char *p, const char *end) {
    int n = 0;
    while ((p = memchr(p, '"', (size_t)(end - p)))) {
        const char *s; size_t len;
        const char *after = json_plain_string(p, end, &s, &len);
        if (!after) return n;
        const char *colon = skip_ws(after, end);
        if (colon < end && *colon == ':' && index_of_name(s, len) >= 0) n++;
        p = after;
    }
    return n;
}

static void on_line(int r, const char *l, size_t len, uint64_t t) {
    struct client *c = &cl[r];
    const char *end = l + len, *sp = memchr(l, ' ', len);
    size_t cmd = sp ? (size_t)(sp - l) : len;
    const char *args = sp ? sp + 1 : end;
#define IS(word) (cmd == sizeof word - 1 && memcmp(l, word, cmd) == 0)
    if (IS("MESSAGE")) { on_message(r, args, end, t); return; }
    other_lines++;
    if (IS("ONLINE_USERS")) {
        if (c->state == REGISTERING) {  /* the welcome list right after REGISTER */
            c->state = ONLINE; registered++; pending_connects--; t_progress = t;
        }
        if (r == 0 && !saw_everyone && count_our_names(args, end) >= members) saw_everyone = 1;
    } else if (IS("INVITATION")) {
        uint64_t id; const char *name; size_t nl; const char *p = args;
        if (!(p = expect_char(p, end, '[')) || !(p = json_uint(p, end, &id)) || !(p = expect_char(p, end, ','))
            || !(p = json_plain_string(p, end, &name, &nl)) || index_of_name(name, nl) != 0) {
            fprintf(stderr, "unexpected INVITATION to client %d: %.*s\n", r, (int)len, l);
            garbled++;
            return;
        }
        if (r == 0) { conversation = (int)id; c->state = MEMBER; joined++; t_progress = t; return; }
        if (c->state != ONLINE) return;
        char b[96];
        snprintf(b, sizeof b, "JOIN [%llu]\nLIST_CONVERSATIONS\n", (unsigned long long)id);
        c->state = JOINING;
        if (conversation < 0) conversation = (int)id;
        say(c, b);
    } else if (IS("CONVERSATIONS")) {
        if (c->state == JOINING) { c->state = MEMBER; joined++; t_progress = t; }
    } else if (IS("ERROR")) {
        errors++;
        fprintf(stderr, "ERROR to client %d: %.*s\n", r, (int)(len > 200 ? 200 : len), l);
    } else if (verbose) {
        fprintf(stderr, "other line to %d: %.*s\n", r, (int)(len > 120 ? 120 : len), l);
    }
#undef IS
}

static void on_input(int r) {
    struct client *c = &cl[r];
    for (int round = 0; round < 4 && c->state != DEAD; round++) {
        ssize_t k = read(c->fd, rbuf, READ_CHUNK);
        if (k == 0) { drop(c, "server closed"); return; }
        if (k < 0) { if (errno != EAGAIN && errno != EINTR) drop(c, "read failed"); return; }
        uint64_t t = now_ns();
        if (quickack) { int one = 1; setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one); }
        const char *p = rbuf, *end = rbuf + k;
        while (p < end && c->state != DEAD) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) break;
            if (c->line_len > 0) { /* finish the carried line */
                c->line = grow(c->line, &c->line_cap, c->line_len + (size_t)(nl - p));
                memcpy(c->line + c->line_len, p, (size_t)(nl - p));
                on_line(r, c->line, c->line_len + (size_t)(nl - p), t);
                c->line_len = 0;
            } else {
                on_line(r, p, (size_t)(nl - p), t);
            }
            p = nl + 1;
        }
        if (p < end && c->state != DEAD) { /* keep the partial line */
            size_t rest = (size_t)(end - p);
            if (c->line_len + rest > MAX_LINE) { garbled++; drop(c, "line over 1 MiB"); return; }
            c->line = grow(c->line, &c->line_cap, c->line_len + rest);
            memcpy(c->line + c->line_len, p, rest);
            c->line_len += rest;
        }
        if (k < READ_CHUNK) return;
    }
}

static void on_event(int i, uint32_t events) {
    struct client *c = &cl[i];
    if (c->state == DEAD) return;
    if (c->state == CONNECTING) {
        int err = 0; socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) { drop(c, "connect failed"); return; }
        if (!(events & EPOLLOUT)) return;
        char b[96], name[NAME_MAX_LEN + 1];
        name_of(i, name);
        snprintf(b, sizeof b, "REGISTER [\"%s\",\"online\"]\n", name);
        c->state = REGISTERING;
        say(c, b);
        return;
    }
    if (events & EPOLLIN) on_input(i);
    if (c->state != DEAD && (events & EPOLLOUT)) flush_out(c);
    if (c->state != DEAD && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) drop(c, "hang-up");
}

/* ---------- phases ---------- */

static void send_invite(void) {
    size_t cap = (size_t)members * (NAME_MAX_LEN + 3) + 16, n = 0;
    char *b = malloc(cap);
    if (!b) fail("malloc");
    n += (size_t)sprintf(b, "INVITE [");
    for (int i = 1; i < members; i++) {
        n += (size_t)sprintf(b + n, "%s\"", i > 1 ? "," : "");
        n += (size_t)name_of(i, b + n);
        b[n++] = '"';
    }
    n += (size_t)sprintf(b + n, "]\n");
    queue_out(&cl[0], b, n);
    flush_out(&cl[0]);
    free(b);
    invited = 1;
}

/* fills every sender's window (and the rate budget); returns how many were queued */
static int send_more(uint64_t t) {
    double budget = rate_cap > 0 ? rate_cap * (double)(t - t_first_send) / 1e9 - (double)sent : 1e300;
    static int next;  /* round robin start, so a rate cap is shared fairly */
    int queued = 0;
    char b[160];
    for (int j = 0; j < members && budget >= 1; j++) {
        int i = (next + j) % members;
        struct client *c = &cl[i];
        int added = 0;
        while (c->state == MEMBER && c->next_seq < (uint32_t)messages && budget >= 1
               && (window <= 0 || c->next_seq - c->acked < (uint32_t)window)) {
            uint64_t ns = now_ns();
            uint32_t q = c->next_seq++;
            int n = snprintf(b, sizeof b, "SEND_MESSAGE [%d,\"T%llu S%d Q%u K%u\"]\n", conversation,
                             (unsigned long long)ns, i, q, check_value(ns, (uint32_t)i, q));
            queue_out(c, b, (size_t)n);
            sent++; budget -= 1; added++;
        }
        if (added) { flush_out(c); queued += added; }
        if (budget < 1) next = (i + 1) % members;
    }
    return queued;
}

static void usage(void) {
    fprintf(stderr, "usage: im_fanout -p PORT [-h 127.0.0.1] [-n MEMBERS] [-m MESSAGES] [-w WINDOW] [-r RATE]\n"
                    "                 [-t SECONDS] [-s STALL_SECONDS] [-c CONNECTS] [-x NAME_PREFIX] [-Q] [-v]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int o; (o = getopt(argc, argv, "h:p:n:m:w:r:t:s:c:x:Qv")) != -1;) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': members = atoi(optarg); break;
        case 'm': messages = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'r': rate_cap = atof(optarg); break;
        case 't': time_limit = atof(optarg); break;
        case 's': stall_limit = atof(optarg); break;
        case 'c': connect_conc = atoi(optarg); break;
        case 'x': if (strlen(optarg) > 20) usage(); strcpy(prefix, optarg); break;
        case 'Q': quickack = 1; break;
        case 'v': verbose = 1; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || members < 2 || members > 5000 || messages < 1 || messages > 65535
        || time_limit <= 0 || stall_limit <= 0 || connect_conc < 1 || (window <= 0 && rate_cap <= 0))
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)members + 32) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t bits = (uint64_t)members * members * messages;
    if (bits / 8 > (256u << 20)) { fprintf(stderr, "members x members x messages too large\n"); exit(2); }
    cl = calloc((size_t)members, sizeof *cl);
    seen = calloc(bits / 8 + 1, 1);
    reached = calloc((size_t)members * messages, sizeof *reached);
    rbuf = malloc(READ_CHUNK);
    if (!cl || !seen || !reached || !rbuf) fail("calloc");
    for (int i = 0; i < members; i++) cl[i].fd = -1;
    if ((epfd = epoll_create1(0)) < 0) fail("epoll_create1");

    uint64_t expected = (uint64_t)members * messages * (members - 1), own_expected = (uint64_t)members * messages;
    t_start = t_progress = now_ns();
    uint64_t deadline = t_start + (uint64_t)(time_limit * 1e9), stall_ns = (uint64_t)(stall_limit * 1e9);
    struct epoll_event evs[512];
    for (;;) {
        uint64_t t = now_ns();
        if (t > deadline) { stop = "time_limit"; break; }
        while (started_connects < members && pending_connects < connect_conc) open_client(started_connects++);
        if (!t_registered && registered == members) {
            t_registered = t;
            fprintf(stderr, "%d clients registered in %.3f s\n", members, (t - t_start) / 1e9);
        }
        if (t_registered && saw_everyone && !invited) send_invite();
        if (!sending && joined == members) {
            sending = 1;
            t_joined = t_first_send = t_progress = t;
            fprintf(stderr, "conversation %d has %d members after %.3f s; sending %d x %d (window %d, rate %g)\n",
                    conversation, members, (t - t_registered) / 1e9, members, messages, window, rate_cap);
        }
        if (closed_early) { stop = "connection_closed"; break; }
        if (errors && !sending) { stop = "setup_error"; break; }
        if (sending) {
            if (delivered + dups >= expected && own_copies >= own_expected) break;
            send_more(t);
        }
        if (t - t_progress > stall_ns) { stop = sending ? "stalled" : "setup_stalled"; break; }
        int n = epoll_wait(epfd, evs, 512, rate_cap > 0 && sending ? 1 : 50);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int k = 0; k < n; k++) on_event((int)evs[k].data.u32, evs[k].events);
    }
    uint64_t t_end = now_ns();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double secs = sending && t_last_delivery > t_first_send ? (t_last_delivery - t_first_send) / 1e9 : 0;
    double rate = secs > 0 ? (double)delivered / secs : 0;
    uint64_t lost = expected > delivered ? expected - delivered : 0;
    uint64_t own_lost = own_expected > own_copies ? own_expected - own_copies : 0;
    fprintf(stderr, "stop=%s sent=%llu delivered=%llu/%llu own=%llu/%llu in %.3f s: %.0f deliveries/s; "
                    "lost=%llu own_lost=%llu garbled=%llu dups=%llu errors=%llu\n",
            stop, (unsigned long long)sent, (unsigned long long)delivered, (unsigned long long)expected,
            (unsigned long long)own_copies, (unsigned long long)own_expected, secs, rate, (unsigned long long)lost,
            (unsigned long long)own_lost, (unsigned long long)garbled, (unsigned long long)dups,
            (unsigned long long)errors);
    printf("RESULT mode=im clients=%d msgs=%d window=%d rate_cap=%g quickack=%d sent=%llu delivered=%llu "
           "expected=%llu own=%llu secs=%.3f rate=%.0f p50_us=%llu p99_us=%llu p999_us=%llu max_us=%llu "
           "mean_us=%.0f lost=%llu own_lost=%llu garbled=%llu dups=%llu errors=%llu other_lines=%llu closed=%llu "
           "register_s=%.3f join_s=%.3f stop=%s total_s=%.3f gen_cpu_s=%.3f\n",
           members, messages, window, rate_cap, quickack, (unsigned long long)sent, (unsigned long long)delivered,
           (unsigned long long)expected, (unsigned long long)own_copies, secs, rate,
           (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
           (unsigned long long)percentile(0.999), (unsigned long long)lat_max,
           lat_count ? (double)lat_total / (double)lat_count : 0.0, (unsigned long long)lost,
           (unsigned long long)own_lost, (unsigned long long)garbled, (unsigned long long)dups,
           (unsigned long long)errors, (unsigned long long)other_lines, (unsigned long long)closed_early,
           t_registered ? (t_registered - t_start) / 1e9 : -1.0,
           t_joined ? (t_joined - t_registered) / 1e9 : -1.0, stop, (t_end - t_start) / 1e9, cpu);
    return strcmp(stop, "complete") == 0 && !lost && !own_lost && !garbled && !dups && !errors ? 0 : 1;
}
