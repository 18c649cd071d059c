// Zero-copy TCP relay for porthole: moves bytes socket → pipe → socket with splice(2) on one native epoll thread per
// process, so relayed bytes never cross into user space. Linux only; JS falls back to its own relay without it.
//
// Ownership: the socket fds passed in belong to JS (libuv) and are never closed here. A session works on its own
// duplicates of them (dup), plus two pipes: those six fds are ours and closed when the session ends. So JS closing a
// socket early can neither pull a live fd from under the thread nor let a reused fd number be spliced into: it only
// ends the session (JS cancels it on 'close'), and the socket is really closed once the thread has let go of it.
//
// API (all calls on the JS thread):
//   start(userFd, targetFd, idleTimeoutMs, pipeSize, done(err, up, down)
//         [, userFraming, targetFraming, upHead, downHead, userWire, targetWire]) → session
//                                      framing: 0 raw, 1 WebSocket client, 2 WebSocket server; heads: payload JS
//                                      read already, delivered first; wire: bytes JS read off a WebSocket socket
//                                      but did not parse, parsed first
//   counters(session) → [up, down]     bytes delivered user → target and target → user so far
//   cancel(session)                    end the session now; `done` still runs, with an ECANCELED error
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 128
#define IDLE_CHECK_MS 250
// After both directions ended, how long a WebSocket endpoint waits for the peer's Close frame (ws waits 30 s).
#define CLOSE_WAIT_MS 5000
// Largest payload per outgoing WebSocket frame (as MAX_MESSAGE in websocket-stream.ts; ws peers accept 1 MiB).
#define WS_MAX_FRAME (256 * 1024)
// User-space buffer for unmasking frames that carry a non-zero masking key.
#define UNMASK_BUF (64 * 1024)

// How an endpoint's bytes are carried. RAW: the byte stream itself. WS_CLIENT / WS_SERVER: a WebSocket (RFC 6455)
// after its upgrade, each binary message a chunk of the byte stream, an empty binary message the end-of-stream
// marker (a half-close; see websocket-stream.ts), a Close frame the end of both directions.
enum framing { FRAMING_RAW = 0, FRAMING_WS_CLIENT = 1, FRAMING_WS_SERVER = 2 };

enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xa };

struct session;

// One socket of a session, as registered with epoll (data.ptr points here).
struct endpoint {
  struct session *session;
  int fd;
  int framing;
  // WebSocket endpoints only.
  uint8_t ctl[2 * (6 + 125)]; // control frames (pong, close) waiting for the next frame boundary towards this socket
  size_t ctl_len;
  int close_sent;             // our Close frame is queued or sent: no data frame follows it
  int close_received;         // the peer's Close frame arrived: nothing more is read from this socket
  int gone;                   // the peer's TCP FIN arrived: nothing is read from or sent to this socket any more
  uint8_t *wire;              // bytes JS had read off the socket but not parsed: [wire_off, wire_len), read first
  size_t wire_off, wire_len;
};

// One direction: bytes read from `src` wait in the pipe until `dst` takes them. The pipe only ever holds payload:
// WebSocket framing is parsed off on the way in and added on the way out.
struct direction {
  int pipe_r, pipe_w;
  size_t capacity; // pipe size as the kernel granted it
  size_t buffered; // bytes in the pipe
  int src_eof;     // no more payload comes from src (FIN, end-of-stream marker, Close)
  int shut;        // end passed on to dst (shutdown SHUT_WR, or the end-of-stream marker), or dst is gone
  _Atomic uint64_t bytes;
  // dst is a WebSocket: the next bytes to write before any more payload (a frame header, control frames).
  uint8_t out[14 + sizeof(((struct endpoint *)0)->ctl)];
  size_t out_len, out_off;
  uint64_t frame_left; // payload bytes of the frame being sent, still in the pipe
  // src is a WebSocket: the frame being read.
  uint8_t hdr[14];
  size_t hdr_have, hdr_need; // header bytes read so far / needed (2 until the first two are known)
  uint64_t in_left;          // payload bytes of the current frame not yet read
  int in_opcode, in_fin;
  uint8_t mask[4];
  int masked;          // non-zero masking key: payload goes through `unmask_buf`
  size_t mask_off;     // position in the key of the next payload byte
  int in_message;      // a fragmented data message is open (continuation frames follow)
  uint64_t message_len;
  uint8_t ctl_payload[125];
  size_t ctl_have;
  uint8_t *unmask_buf; // unmasked payload not yet in the pipe: [unmask_off, unmask_len)
  size_t unmask_off, unmask_len;
};

struct session {
  struct endpoint user, target;
  struct direction up, down; // up: user → target, down: target → user
  int64_t idle_timeout_ms;   // 0 = none
  int64_t last_activity_ms;
  int64_t closing_since_ms;  // both directions done, waiting for WebSocket Close frames; 0 = not yet
  int timed;                 // counted in the thread's timed sessions (idle timeout or WebSocket close wait)
  int kick;                  // a control frame was queued: pump both directions again
  int error;                 // errno-style code that ended the session, 0 = clean
  const char *error_what;    // which step failed
  int registered;
  int finished;
  _Atomic int cancelled;
  _Atomic int refs;          // the JS handle + the thread/callback
  napi_threadsafe_function done;
  struct session *next;      // thread's list of live sessions
  struct session *next_new;  // hand-over queue from JS to the thread
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *incoming;    // sessions handed over by JS, not yet registered
static int thread_started;
static int epoll_fd = -1;
static int wake_fd = -1;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void session_unref(struct session *s) {
  if (atomic_fetch_sub(&s->refs, 1) == 1) {
    free(s->user.wire);
    free(s->target.wire);
    free(s->up.unmask_buf);
    free(s->down.unmask_buf);
    free(s);
  }
}

static void close_pipes(struct direction *d) {
  if (d->pipe_r >= 0) close(d->pipe_r);
  if (d->pipe_w >= 0) close(d->pipe_w);
  d->pipe_r = d->pipe_w = -1;
}

static void fail(struct session *s, int err, const char *what) {
  if (s->error == 0) {
    s->error = err;
    s->error_what = what;
  }
  s->finished = 1;
}

static int is_ws(const struct endpoint *e) { return e->framing != FRAMING_RAW; }

// --- WebSocket framing ---------------------------------------------------------------------------------------------

// Writes a frame header for `len` payload bytes into `buf`; returns its size.
//
// A client must mask every frame it sends (RFC 6455 §5.3), and we do, with the all-zero key: a valid key on the wire
// that every server unmasks with (XOR by zero is a no-op), so the payload can still go socket → pipe → socket untouched.
// What that gives up: masking exists so that a browser's script cannot choose the bytes an intermediary (a cache or a
// transparent proxy) sees, against cache poisoning. Our client is not a browser running someone else's script: the
// bytes it sends are the tunnel's own payload, which a random key would not hide from anyone either.
static size_t ws_header(uint8_t *buf, int opcode, uint64_t len, int client) {
  size_t n = 0;
  buf[n++] = (uint8_t)(0x80 | opcode);
  uint8_t mask_bit = client ? 0x80 : 0;
  if (len < 126) {
    buf[n++] = (uint8_t)(mask_bit | len);
  } else if (len < 65536) {
    buf[n++] = mask_bit | 126;
    buf[n++] = (uint8_t)(len >> 8);
    buf[n++] = (uint8_t)len;
  } else {
    buf[n++] = mask_bit | 127;
    for (int i = 7; i >= 0; i--) buf[n++] = (uint8_t)(len >> (8 * i));
  }
  if (client) {
    memset(buf + n, 0, 4);
    n += 4;
  }
  return n;
}

// Queues a control frame towards `e`; it goes out at the next frame boundary. A pong that finds no room is dropped
// (RFC 6455 allows answering only the latest ping); a Close always has room, as only one is ever queued.
static void ws_queue_control(struct session *s, struct endpoint *e, int opcode, const uint8_t *payload, size_t len) {
  if (e->gone || e->close_sent) return;
  if (len > 125) len = 125;
  if (e->ctl_len + 6 + len > sizeof e->ctl) return;
  e->ctl_len += ws_header(e->ctl + e->ctl_len, opcode, len, e->framing == FRAMING_WS_CLIENT);
  memcpy(e->ctl + e->ctl_len, payload, len);
  e->ctl_len += len;
  if (opcode == WS_CLOSE) e->close_sent = 1;
  s->kick = 1;
}

static void ws_queue_close(struct session *s, struct endpoint *e, const uint8_t *payload, size_t len) {
  static const uint8_t normal[2] = {0x03, 0xe8}; // 1000, normal closure
  if (len < 2) {
    payload = normal;
    len = 2;
  }
  ws_queue_control(s, e, WS_CLOSE, payload, 2); // the status code only: the reason text is not ours to echo
}

// Reads up to `n` bytes of WebSocket `e`'s byte stream: first what JS had already read off the socket, then the socket.
static ssize_t ws_read(struct endpoint *e, void *buf, size_t n) {
  if (e->wire_off < e->wire_len) {
    size_t k = e->wire_len - e->wire_off < n ? e->wire_len - e->wire_off : n;
    memcpy(buf, e->wire + e->wire_off, k);
    e->wire_off += k;
    return (ssize_t)k;
  }
  return recv(e->fd, buf, n, 0);
}

// XORs `n` bytes with the masking key, starting at key position *off, and advances it.
static void unmask(uint8_t *buf, size_t n, const uint8_t key[4], size_t *off) {
  size_t i = 0;
  size_t o = *off & 3;
  // Aligns to the key, then 8 bytes at a time (the compiler vectorises this loop).
  while (i < n && o != 0) {
    buf[i++] ^= key[o];
    o = (o + 1) & 3;
  }
  uint64_t k8;
  uint8_t pattern[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  memcpy(&k8, pattern, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, buf + i, 8);
    v ^= k8;
    memcpy(buf + i, &v, 8);
  }
  for (; i < n; i++) {
    buf[i] ^= key[o];
    o = (o + 1) & 3;
  }
  *off = o;
}

// The peer's TCP FIN on a WebSocket endpoint (with or without a Close frame before it): as in ws, the WebSocket is
// over both ways. What was read is still delivered and its end passed on; the direction into it is dropped.
static void ws_peer_gone(struct session *s, struct endpoint *e, struct direction *from, struct direction *into) {
  e->gone = 1;
  e->ctl_len = 0;
  from->src_eof = 1;
  into->shut = 1;
  into->out_len = into->out_off = 0;
  s->kick = 1;
}

// A complete control frame arrived from `e`.
static void ws_control(struct session *s, struct endpoint *e, struct direction *from, struct direction *into) {
  switch (from->in_opcode) {
  case WS_PING:
    ws_queue_control(s, e, WS_PONG, from->ctl_payload, from->ctl_have);
    break;
  case WS_PONG:
    break;
  case WS_CLOSE:
    // The peer ends the WebSocket: what it sent before is delivered and followed by a FIN, we answer its Close
    // (unless ours crossed it), and payload still waiting to go to it is dropped, as ws drops it.
    e->close_received = 1;
    from->src_eof = 1;
    ws_queue_close(s, e, from->ctl_payload, from->ctl_have);
    into->shut = 1;
    s->kick = 1;
    break;
  }
  from->ctl_have = 0;
}

static void ws_protocol_error(struct session *s, const char *what) { fail(s, EPROTO, what); }

// Parses a complete header in d->hdr. Returns 0, or -1 after failing the session.
static int ws_parse_header(struct session *s, struct endpoint *e, struct direction *d) {
  uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
  int opcode = b0 & 0x0f;
  int fin = (b0 & 0x80) != 0;
  int masked = (b1 & 0x80) != 0;
  if (b0 & 0x70) return ws_protocol_error(s, "websocket: frame with reserved bits set"), -1;
  // Clients mask, servers do not (RFC 6455 §5.1); ws refuses the other way round too.
  if (masked != (e->framing == FRAMING_WS_SERVER))
    return ws_protocol_error(s, masked ? "websocket: masked frame from the server" : "websocket: unmasked frame from the client"), -1;
  uint64_t len = b1 & 0x7f;
  size_t at = 2;
  if (len == 126) {
    len = ((uint64_t)d->hdr[2] << 8) | d->hdr[3];
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | d->hdr[2 + i];
    at = 10;
    if (len >> 63) return ws_protocol_error(s, "websocket: frame length out of range"), -1;
  }
  switch (opcode) {
  case WS_BINARY:
    if (d->in_message) return ws_protocol_error(s, "websocket: new message inside a fragmented one"), -1;
    d->in_message = 1;
    d->message_len = 0;
    break;
  case WS_CONT:
    if (!d->in_message) return ws_protocol_error(s, "websocket: continuation frame without a message"), -1;
    break;
  case WS_TEXT:
    return ws_protocol_error(s, "websocket: text message on a binary pool stream"), -1;
  case WS_CLOSE:
  case WS_PING:
  case WS_PONG:
    if (!fin || len > 125) return ws_protocol_error(s, "websocket: fragmented or oversized control frame"), -1;
    if (opcode == WS_CLOSE && len == 1) return ws_protocol_error(s, "websocket: close frame with a 1-byte payload"), -1;
    break;
  default:
    return ws_protocol_error(s, "websocket: unknown opcode"), -1;
  }
  if ((opcode == WS_BINARY || opcode == WS_CONT) && len > 0 && d->src_eof)
    return ws_protocol_error(s, "websocket: data after the end of stream"), -1;
  d->in_opcode = opcode;
  d->in_fin = fin;
  d->in_left = len;
  d->mask_off = 0;
  d->masked = 0;
  if (masked) {
    memcpy(d->mask, d->hdr + at, 4);
    d->masked = (d->mask[0] | d->mask[1] | d->mask[2] | d->mask[3]) != 0; // a zero key is spliced like no mask
  }
  d->hdr_have = 0;
  d->hdr_need = 2;
  return 0;
}

// The current frame's payload has all been read.
static void ws_frame_done(struct session *s, struct endpoint *e, struct direction *from, struct direction *into) {
  if (from->in_opcode == WS_BINARY || from->in_opcode == WS_CONT) {
    if (from->in_fin) {
      from->in_message = 0;
      // An empty message is the peer's end-of-stream marker (its half-close).
      if (from->message_len == 0) from->src_eof = 1;
    }
  } else {
    ws_control(s, e, from, into);
  }
}

// Reads frames from WebSocket `e` into direction `d`'s pipe (payload only). Returns 1 if anything moved.
static int ws_fill(struct session *s, struct endpoint *e, struct direction *d, struct direction *into) {
  int progressed = 0;
  while (!s->finished && !e->gone && !e->close_received) {
    // Unmasked payload left over from a pipe that was full.
    if (d->unmask_off < d->unmask_len) {
      ssize_t n = write(d->pipe_w, d->unmask_buf + d->unmask_off, d->unmask_len - d->unmask_off);
      if (n > 0) {
        d->unmask_off += (size_t)n;
        d->buffered += (size_t)n;
        progressed = 1;
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) fail(s, errno, "pipe");
      return progressed;
    }
    int data_frame = d->in_opcode == WS_BINARY || d->in_opcode == WS_CONT;
    if (d->in_left > 0 && data_frame) {
      if (d->buffered >= d->capacity) return progressed;
      size_t room = d->capacity - d->buffered;
      size_t want = d->in_left < room ? (size_t)d->in_left : room;
      ssize_t n;
      if (!d->masked && e->wire_off == e->wire_len) {
        n = splice(e->fd, NULL, d->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) d->buffered += (size_t)n;
      } else {
        if (d->unmask_buf == NULL && (d->unmask_buf = malloc(UNMASK_BUF)) == NULL) return fail(s, ENOMEM, "unmask"), 1;
        if (want > UNMASK_BUF) want = UNMASK_BUF;
        n = ws_read(e, d->unmask_buf, want);
        if (n > 0) {
          if (d->masked) unmask(d->unmask_buf, (size_t)n, d->mask, &d->mask_off);
          d->unmask_off = 0;
          d->unmask_len = (size_t)n;
        }
      }
      if (n == 0) return ws_protocol_error(s, "websocket: connection closed mid-frame"), 1;
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) fail(s, errno, "read");
        return progressed || s->finished;
      }
      d->in_left -= (uint64_t)n;
      d->message_len += (uint64_t)n;
      progressed = 1;
      if (d->in_left == 0) ws_frame_done(s, e, d, into);
      continue;
    }
    if (d->in_left > 0) { // a control frame's payload (≤ 125 bytes)
      ssize_t n = ws_read(e, d->ctl_payload + d->ctl_have, (size_t)d->in_left);
      if (n == 0) return ws_protocol_error(s, "websocket: connection closed mid-frame"), 1;
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) fail(s, errno, "read");
        return progressed || s->finished;
      }
      if (d->masked) {
        size_t off = d->mask_off;
        unmask(d->ctl_payload + d->ctl_have, (size_t)n, d->mask, &off);
        d->mask_off = off;
      }
      d->ctl_have += (size_t)n;
      d->in_left -= (uint64_t)n;
      progressed = 1;
      if (d->in_left == 0) ws_frame_done(s, e, d, into);
      continue;
    }
    // The next frame header: read exactly its bytes, never into the payload that follows (that is spliced).
    if (d->hdr_need == 0) d->hdr_need = 2;
    ssize_t n = ws_read(e, d->hdr + d->hdr_have, d->hdr_need - d->hdr_have);
    if (n == 0) {
      if (d->hdr_have > 0 || d->in_message) return ws_protocol_error(s, "websocket: connection closed mid-frame"), 1;
      ws_peer_gone(s, e, d, into);
      return 1;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) fail(s, errno, "read");
      return progressed || s->finished;
    }
    d->hdr_have += (size_t)n;
    progressed = 1;
    if (d->hdr_have < d->hdr_need) continue;
    if (d->hdr_need == 2) {
      size_t len7 = d->hdr[1] & 0x7f;
      d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((d->hdr[1] & 0x80) ? 4 : 0);
      if (d->hdr_need > 2) continue;
    }
    if (ws_parse_header(s, e, d) < 0) return 1;
    if (d->in_left == 0) ws_frame_done(s, e, d, into);
  }
  return progressed;
}

// Writes direction `d`'s pipe to WebSocket `e` as binary frames, with control frames between them. Returns 1 if
// anything moved.
static int ws_drain(struct session *s, struct endpoint *e, struct direction *d) {
  int progressed = 0;
  int client = e->framing == FRAMING_WS_CLIENT;
  while (!s->finished && !e->gone) {
    if (d->out_off < d->out_len) {
      // MSG_MORE: a frame header waits for its payload's splice instead of leaving as a packet of its own.
      int flags = MSG_NOSIGNAL | (d->frame_left > 0 ? MSG_MORE : 0);
      ssize_t n = send(e->fd, d->out + d->out_off, d->out_len - d->out_off, flags);
      if (n > 0) {
        d->out_off += (size_t)n;
        if (d->out_off == d->out_len) d->out_off = d->out_len = 0;
        progressed = 1;
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) fail(s, errno, "write");
      return progressed || s->finished;
    }
    if (d->frame_left > 0) {
      ssize_t n = splice(d->pipe_r, NULL, e->fd, NULL, (size_t)d->frame_left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->frame_left -= (uint64_t)n;
        d->buffered -= (size_t)n;
        atomic_fetch_add_explicit(&d->bytes, (uint64_t)n, memory_order_relaxed);
        progressed = 1;
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) fail(s, errno, "write");
      return progressed || s->finished;
    }
    // At a frame boundary: control frames first, then the next data frame, or the end-of-stream marker.
    if (e->ctl_len > 0) {
      memcpy(d->out, e->ctl, e->ctl_len);
      d->out_len = e->ctl_len;
      d->out_off = 0;
      e->ctl_len = 0;
      continue;
    }
    if (d->shut || e->close_sent) return progressed;
    if (d->buffered > 0) {
      uint64_t len = d->buffered < WS_MAX_FRAME ? d->buffered : WS_MAX_FRAME;
      d->out_len = ws_header(d->out, WS_BINARY, len, client);
      d->out_off = 0;
      d->frame_left = len;
      continue;
    }
    if (d->src_eof) {
      // Half-close: the source's FIN becomes an empty binary message, as WebSocketStream sends it.
      d->out_len = ws_header(d->out, WS_BINARY, 0, client);
      d->out_off = 0;
      d->shut = 1;
      continue;
    }
    return progressed;
  }
  return progressed;
}

// --- raw sockets ---------------------------------------------------------------------------------------------------

static int raw_drain(struct session *s, struct direction *d, int dst) {
  int progressed = 0;
  while (d->buffered > 0) {
    ssize_t n = splice(d->pipe_r, NULL, dst, NULL, d->buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->buffered -= (size_t)n;
      atomic_fetch_add_explicit(&d->bytes, (uint64_t)n, memory_order_relaxed);
      progressed = 1;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      fail(s, errno, "write");
      return 1;
    }
    break;
  }
  if (d->src_eof && d->buffered == 0 && !d->shut) {
    // Half-close: everything the source sent has been delivered, pass its FIN on; the other direction goes on.
    if (shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN) {
      fail(s, errno, "shutdown");
      return 1;
    }
    d->shut = 1;
    progressed = 1;
  }
  return progressed;
}

static int raw_fill(struct session *s, struct direction *d, int src) {
  if (d->src_eof || d->buffered >= d->capacity) return 0;
  ssize_t n = splice(src, NULL, d->pipe_w, NULL, d->capacity - d->buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    d->buffered += (size_t)n;
    return 1;
  }
  if (n == 0) {
    d->src_eof = 1;
    return 1;
  }
  if (errno != EAGAIN && errno != EINTR) {
    fail(s, errno, "read");
    return 1;
  }
  return 0;
}

// Moves as much as possible in one direction without blocking. Returns 1 if any byte moved or an end was passed on.
static int pump(struct session *s, struct direction *d, struct endpoint *src, struct endpoint *dst,
                struct direction *reverse) {
  int progressed = 0;
  while (!s->finished) {
    int moved = is_ws(dst) ? ws_drain(s, dst, d) : raw_drain(s, d, dst->fd);
    if (!s->finished) moved |= is_ws(src) ? ws_fill(s, src, d, reverse) : raw_fill(s, d, src->fd);
    if (!moved) return progressed;
    progressed = 1;
  }
  return 1;
}

// True once every WebSocket endpoint has had its Close handshake (or its peer left).
static int ws_closed(struct session *s, struct endpoint *e, struct direction *into) {
  if (!is_ws(e) || e->gone) return 1;
  if (!e->close_sent) ws_queue_close(s, e, NULL, 0);
  return e->close_received && e->ctl_len == 0 && into->out_off == into->out_len;
}

// Pumps the directions an event concerns: readable `from` feeds the direction out of it, writable `into` drains
// the one into it (both 1 when unsure, e.g. on registration). Skipping the other saves a futile splice per event.
static void run_session(struct session *s, int up, int down) {
  if (s->finished) return;
  int a = 0;
  for (int round = 0; round < 4 && !s->finished; round++) {
    s->kick = 0;
    if (up) a |= pump(s, &s->up, &s->user, &s->target, &s->down);
    if (down && !s->finished) a |= pump(s, &s->down, &s->target, &s->user, &s->up);
    if (!s->finished && s->up.shut && s->down.shut) {
      // Both directions are done: a WebSocket ends with a Close handshake (we wait for the peer's Close so that
      // closing the socket does not reset it while its Close is in flight).
      int closed = ws_closed(s, &s->user, &s->down);
      closed &= ws_closed(s, &s->target, &s->up);
      if (closed) s->finished = 1;
      else if (s->closing_since_ms == 0) s->closing_since_ms = now_ms();
    }
    if (!s->kick) break;
    up = down = 1; // a control frame queued towards either socket
  }
  if (a) s->last_activity_ms = now_ms();
}

// A socket reported EPOLLERR: an error pending on it ends the session even when no read or write would surface it
// (e.g. a reset arriving after that side's FIN).
static void check_socket_error(struct session *s, int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) fail(s, err, "socket");
}

static int open_pipe(struct session *s, struct direction *d, int pipe_size) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
  d->pipe_r = fds[0];
  d->pipe_w = fds[1];
  if (pipe_size > 0) fcntl(fds[1], F_SETPIPE_SZ, pipe_size); // best effort: limits may refuse, the default works
  int size = fcntl(fds[1], F_GETPIPE_SZ);
  d->capacity = size > 0 ? (size_t)size : 65536;
  (void)s;
  return 0;
}

static void finish(struct session *s) {
  if (s->registered) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->user.fd, NULL);
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->target.fd, NULL);
    s->registered = 0;
  }
  close(s->user.fd);
  close(s->target.fd);
  close_pipes(&s->up);
  close_pipes(&s->down);
  // Hands the thread's reference to the completion callback; blocking never happens with an unbounded queue.
  if (napi_call_threadsafe_function(s->done, s, napi_tsfn_nonblocking) != napi_ok) session_unref(s);
  napi_release_threadsafe_function(s->done, napi_tsfn_release);
}

static void *loop_main(void *arg) {
  (void)arg;
  struct epoll_event events[MAX_EVENTS];
  struct session *live = NULL;
  int timed = 0; // live sessions with an idle timeout or a WebSocket close wait: only then does the thread wake up
  int64_t last_idle_check = now_ms();
  for (;;) {
    int n = epoll_wait(epoll_fd, events, MAX_EVENTS, timed > 0 ? IDLE_CHECK_MS : -1);
    int any_finished = 0;
    if (n < 0 && errno != EINTR) n = 0;
    int woken = 0;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) {
        uint64_t v;
        while (read(wake_fd, &v, sizeof v) > 0) {
        }
        woken = 1;
        continue;
      }
      struct endpoint *e = events[i].data.ptr;
      struct session *s = e->session;
      if (s->finished) continue; // finished earlier in this batch; freed only after it
      uint32_t ev = events[i].events;
      if (ev & EPOLLERR) check_socket_error(s, e->fd);
      int readable = (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
      int writable = (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
      int is_user = e == &s->user;
      run_session(s, is_user ? readable : writable, is_user ? writable : readable);
      any_finished |= s->finished;
    }
    if (woken) {
      pthread_mutex_lock(&queue_lock);
      struct session *fresh = incoming;
      incoming = NULL;
      pthread_mutex_unlock(&queue_lock);
      while (fresh) {
        struct session *s = fresh;
        fresh = s->next_new;
        s->next = live;
        live = s;
        s->timed = s->idle_timeout_ms > 0 || is_ws(&s->user) || is_ws(&s->target);
        if (s->timed) timed++;
        any_finished = 1; // registration may fail, or the first pump may finish the session
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
        ev.data.ptr = &s->user;
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s->user.fd, &ev) < 0) {
          fail(s, errno, "register");
          continue;
        }
        ev.data.ptr = &s->target;
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s->target.fd, &ev) < 0) {
          epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->user.fd, NULL);
          fail(s, errno, "register");
          continue;
        }
        s->registered = 1;
        // Bytes may already wait in the kernel: an edge-triggered registration must not rely on a first edge.
        run_session(s, 1, 1);
      }
    }
    int64_t now = now_ms();
    int idle_check = timed > 0 && now - last_idle_check >= IDLE_CHECK_MS;
    if (idle_check) last_idle_check = now;
    // Walks the list only when something may have changed in it (a wake-up also carries cancels), so a busy thread
    // does not pay for every live session on every batch of events.
    if (!woken && !idle_check && !any_finished) continue;
    // Ends what finished in this round, after every event of the batch has been looked at.
    struct session **link = &live;
    while (*link) {
      struct session *s = *link;
      if (!s->finished && atomic_load(&s->cancelled)) fail(s, ECANCELED, "cancel");
      if (!s->finished && idle_check && s->idle_timeout_ms > 0 && now - s->last_activity_ms >= s->idle_timeout_ms)
        fail(s, ETIMEDOUT, "idle");
      // Every byte was delivered; a peer that never answers our Close only delays closing the socket.
      if (!s->finished && idle_check && s->closing_since_ms > 0 && now - s->closing_since_ms >= CLOSE_WAIT_MS)
        s->finished = 1;
      if (s->finished) {
        *link = s->next;
        if (s->timed) timed--;
        finish(s);
      } else {
        link = &s->next;
      }
    }
  }
  return NULL;
}

// Closes what a failed ensure_thread() opened, keeping its errno, so the next start() tries afresh.
static int thread_setup_failed(void) {
  int err = errno;
  if (wake_fd >= 0) close(wake_fd);
  if (epoll_fd >= 0) close(epoll_fd);
  wake_fd = epoll_fd = -1;
  errno = err;
  return -1;
}

static int start_thread_locked(void) {
  if (thread_started) return 0;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return thread_setup_failed();
  wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) return thread_setup_failed();
  struct epoll_event ev = {.events = EPOLLIN};
  ev.data.ptr = NULL;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) < 0) return thread_setup_failed();
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&thread, &attr, loop_main, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return thread_setup_failed();
  }
  thread_started = 1;
  return 0;
}

// Under the queue lock: worker threads each load the addon and may call start() at the same time.
static int ensure_thread(void) {
  pthread_mutex_lock(&queue_lock);
  int rc = start_thread_locked();
  int err = errno;
  pthread_mutex_unlock(&queue_lock);
  errno = err;
  return rc;
}

static void wake(void) {
  uint64_t one = 1;
  ssize_t w = write(wake_fd, &one, sizeof one);
  (void)w;
}

// --- JS side -------------------------------------------------------------------------------------------------------

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "splice relay: %s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static void call_done(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  struct session *s = data;
  if (env != NULL && callback != NULL) {
    napi_value argv[3], global;
    if (s->error != 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "splice relay: %s: %s", s->error_what ? s->error_what : "error", strerror(s->error));
      napi_value code_v, msg_v;
      const char *code = s->error == ECANCELED   ? "ECANCELED"
                         : s->error == ETIMEDOUT ? "ETIMEDOUT"
                         : s->error == ECONNRESET ? "ECONNRESET"
                         : s->error == EPIPE      ? "EPIPE"
                         : s->error == EPROTO     ? "EPROTO"
                                                  : "ESPLICE";
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
      napi_create_error(env, code_v, msg_v, &argv[0]);
      napi_value errno_v;
      napi_create_int32(env, -s->error, &errno_v);
      napi_set_named_property(env, argv[0], "errno", errno_v);
    } else {
      napi_get_null(env, &argv[0]);
    }
    napi_create_double(env, (double)atomic_load(&s->up.bytes), &argv[1]);
    napi_create_double(env, (double)atomic_load(&s->down.bytes), &argv[2]);
    napi_get_global(env, &global);
    napi_call_function(env, global, callback, 3, argv, NULL);
  }
  session_unref(s);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  session_unref(data);
}

static int get_fd(napi_env env, napi_value v, int *out) {
  int32_t fd;
  if (napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) return -1;
  *out = fd;
  return 0;
}

// Optional start() argument `i`: an endpoint's framing (0 raw, 1 WebSocket client, 2 WebSocket server).
static int get_framing(napi_env env, napi_value *argv, size_t argc, size_t i, int *out) {
  *out = FRAMING_RAW;
  napi_valuetype t = napi_undefined;
  if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_undefined) return 0;
  int32_t v;
  if (napi_get_value_int32(env, argv[i], &v) != napi_ok || v < FRAMING_RAW || v > FRAMING_WS_SERVER) return -1;
  *out = v;
  return 0;
}

// Optional start() argument `i`: payload JS read before the takeover, delivered first (it goes into the pipe).
static int get_head(napi_env env, napi_value *argv, size_t argc, size_t i, void **data, size_t *len) {
  *data = NULL;
  *len = 0;
  napi_valuetype t = napi_undefined;
  if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_undefined) return 0;
  bool is_buffer = false;
  if (napi_is_buffer(env, argv[i], &is_buffer) != napi_ok || !is_buffer) return -1;
  return napi_get_buffer_info(env, argv[i], data, len) == napi_ok ? 0 : -1;
}

// Puts a head into a fresh pipe; fails (EMSGSIZE) rather than keep part of it.
static int prefill(struct direction *d, const void *data, size_t len) {
  if (len == 0) return 0;
  ssize_t n = len <= d->capacity ? write(d->pipe_w, data, len) : -1;
  if (n == (ssize_t)len) {
    d->buffered = len;
    return 0;
  }
  errno = n < 0 && len <= d->capacity ? errno : EMSGSIZE;
  if (errno == EAGAIN) errno = EMSGSIZE;
  return -1;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int user_fd, target_fd;
  int64_t idle = 0, pipe_size = 0;
  napi_valuetype cb_type = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &cb_type);
  int user_framing, target_framing;
  void *up_head, *down_head, *user_wire, *target_wire;
  size_t up_head_len, down_head_len, user_wire_len, target_wire_len;
  if (argc < 5 || get_fd(env, argv[0], &user_fd) < 0 || get_fd(env, argv[1], &target_fd) < 0 ||
      napi_get_value_int64(env, argv[2], &idle) != napi_ok || napi_get_value_int64(env, argv[3], &pipe_size) != napi_ok ||
      cb_type != napi_function || user_fd == target_fd || get_framing(env, argv, argc, 5, &user_framing) < 0 ||
      get_framing(env, argv, argc, 6, &target_framing) < 0 || get_head(env, argv, argc, 7, &up_head, &up_head_len) < 0 ||
      get_head(env, argv, argc, 8, &down_head, &down_head_len) < 0 ||
      get_head(env, argv, argc, 9, &user_wire, &user_wire_len) < 0 ||
      get_head(env, argv, argc, 10, &target_wire, &target_wire_len) < 0) {
    napi_throw_type_error(env, NULL,
                          "splice relay: start(userFd, targetFd, idleTimeoutMs, pipeSize, done[, userFraming, "
                          "targetFraming, upHead, downHead, userWire, targetWire])");
    return NULL;
  }
  if (ensure_thread() < 0) return throw_errno(env, errno, "start thread");

  struct session *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, ENOMEM, "allocate");
  s->up.pipe_r = s->up.pipe_w = s->down.pipe_r = s->down.pipe_w = -1;
  s->idle_timeout_ms = idle > 0 ? idle : 0;
  s->last_activity_ms = now_ms();
  atomic_init(&s->refs, 2);
  int own_user = fcntl(user_fd, F_DUPFD_CLOEXEC, 3);
  int own_target = own_user < 0 ? -1 : fcntl(target_fd, F_DUPFD_CLOEXEC, 3);
  if (own_target < 0 || open_pipe(s, &s->up, (int)pipe_size) < 0 || open_pipe(s, &s->down, (int)pipe_size) < 0 ||
      prefill(&s->up, up_head, up_head_len) < 0 || prefill(&s->down, down_head, down_head_len) < 0) {
    int err = errno;
    if (own_user >= 0) close(own_user);
    if (own_target >= 0) close(own_target);
    close_pipes(&s->up);
    close_pipes(&s->down);
    free(s);
    return throw_errno(env, err, own_target < 0 ? "dup" : err == EMSGSIZE ? "head" : "pipe");
  }
  s->user = (struct endpoint){.session = s, .fd = own_user, .framing = user_framing};
  s->target = (struct endpoint){.session = s, .fd = own_target, .framing = target_framing};
  s->up.hdr_need = s->down.hdr_need = 2;
  // Wire bytes only make sense on a WebSocket endpoint (a raw one's unread bytes are payload: its head).
  if ((user_wire_len > 0 && (s->user.wire = malloc(user_wire_len)) == NULL) ||
      (target_wire_len > 0 && (s->target.wire = malloc(target_wire_len)) == NULL)) {
    close(own_user);
    close(own_target);
    close_pipes(&s->up);
    close_pipes(&s->down);
    free(s->user.wire);
    free(s);
    return throw_errno(env, ENOMEM, "allocate");
  }
  if (user_wire_len > 0) memcpy(s->user.wire, user_wire, s->user.wire_len = user_wire_len);
  if (target_wire_len > 0) memcpy(s->target.wire, target_wire, s->target.wire_len = target_wire_len);

  napi_value name, handle;
  napi_create_string_utf8(env, "porthole splice relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &s->done) !=
      napi_ok) {
    close(own_user);
    close(own_target);
    close_pipes(&s->up);
    close_pipes(&s->down);
    free(s);
    napi_throw_error(env, NULL, "splice relay: cannot create the completion callback");
    return NULL;
  }
  if (napi_create_external(env, s, finalize_handle, NULL, &handle) != napi_ok) {
    // Without a handle JS cannot hold the session; the thread still owns it and reports through `done`.
    atomic_fetch_sub(&s->refs, 1);
  }

  pthread_mutex_lock(&queue_lock);
  s->next_new = incoming;
  incoming = s;
  pthread_mutex_unlock(&queue_lock);
  wake();
  return handle;
}

static struct session *get_session(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok)
    return NULL;
  return data;
}

static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, up, down;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct session *s = argc == 1 ? get_session(env, argv[0]) : NULL;
  if (s == NULL) {
    napi_throw_type_error(env, NULL, "splice relay: counters(session)");
    return NULL;
  }
  napi_create_array_with_length(env, 2, &result);
  napi_create_double(env, (double)atomic_load_explicit(&s->up.bytes, memory_order_relaxed), &up);
  napi_create_double(env, (double)atomic_load_explicit(&s->down.bytes, memory_order_relaxed), &down);
  napi_set_element(env, result, 0, up);
  napi_set_element(env, result, 1, down);
  return result;
}

static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct session *s = argc == 1 ? get_session(env, argv[0]) : NULL;
  if (s == NULL) {
    napi_throw_type_error(env, NULL, "splice relay: cancel(session)");
    return NULL;
  }
  atomic_store(&s->cancelled, 1);
  wake();
  return NULL;
}

// What start() understands, checked by src/tunnel/splice-relay.ts: a build older than the JS would ignore arguments
// it does not know (heads, framing) and lose their bytes, so JS refuses a mismatch and relays in JS instead.
#define ABI_VERSION 2

static napi_value init(napi_env env, napi_value exports) {
  napi_value abi;
  napi_create_int32(env, ABI_VERSION, &abi);
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
      {"abi", NULL, NULL, NULL, NULL, abi, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
