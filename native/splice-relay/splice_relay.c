// Zero-copy TCP relay for porthole: moves bytes socket → pipe → socket with splice(2) on one native epoll thread per
// process, so relayed bytes never cross into user space. Linux only; JS falls back to its own relay without it.
//
// Ownership: the socket fds passed in belong to JS (libuv) and are never closed here. A session works on its own
// duplicates of them (dup), plus two pipes: those six fds are ours and closed when the session ends. So JS closing a
// socket early can neither pull a live fd from under the thread nor let a reused fd number be spliced into: it only
// ends the session (JS cancels it on 'close'), and the socket is really closed once the thread has let go of it.
//
// API (all calls on the JS thread):
//   start(userFd, targetFd, idleTimeoutMs, pipeSize, done(err, up, down)) → session
//   counters(session) → [up, down]     bytes delivered user → target and target → user so far
//   cancel(session)                    end the session now; `done` still runs, with an ECANCELED error
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
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

struct session;

// One socket of a session, as registered with epoll (data.ptr points here).
struct endpoint {
  struct session *session;
  int fd;
};

// One direction: bytes read from `src` wait in the pipe until `dst` takes them.
struct direction {
  int pipe_r, pipe_w;
  size_t capacity; // pipe size as the kernel granted it
  size_t buffered; // bytes in the pipe
  int src_eof;     // src sent FIN
  int shut;        // FIN passed on to dst (shutdown SHUT_WR)
  _Atomic uint64_t bytes;
};

struct session {
  struct endpoint user, target;
  struct direction up, down; // up: user → target, down: target → user
  int64_t idle_timeout_ms;   // 0 = none
  int64_t last_activity_ms;
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
  if (atomic_fetch_sub(&s->refs, 1) == 1) free(s);
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

// Moves as much as possible in one direction without blocking. Returns 1 if any byte moved or a FIN was passed on.
static int pump(struct session *s, struct direction *d, int src, int dst) {
  int progressed = 0;
  for (;;) {
    int moved = 0;
    if (d->buffered > 0) {
      ssize_t n = splice(d->pipe_r, NULL, dst, NULL, d->buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->buffered -= (size_t)n;
        atomic_fetch_add_explicit(&d->bytes, (uint64_t)n, memory_order_relaxed);
        moved = 1;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        fail(s, errno, "write");
        return 1;
      }
    }
    if (!d->src_eof && d->buffered < d->capacity) {
      ssize_t n = splice(src, NULL, d->pipe_w, NULL, d->capacity - d->buffered, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->buffered += (size_t)n;
        moved = 1;
      } else if (n == 0) {
        d->src_eof = 1;
        moved = 1;
      } else if (errno != EAGAIN && errno != EINTR) {
        fail(s, errno, "read");
        return 1;
      }
    }
    if (d->src_eof && d->buffered == 0 && !d->shut) {
      // Half-close: everything the source sent has been delivered, pass its FIN on; the other direction goes on.
      if (shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN) {
        fail(s, errno, "shutdown");
        return 1;
      }
      d->shut = 1;
      moved = 1;
    }
    if (!moved) return progressed;
    progressed = 1;
  }
}

// Pumps the directions an event concerns: readable `from` feeds the direction out of it, writable `into` drains
// the one into it (both 1 when unsure, e.g. on registration). Skipping the other saves a futile splice per event.
static void run_session(struct session *s, int up, int down) {
  if (s->finished) return;
  int a = 0;
  if (up) a |= pump(s, &s->up, s->user.fd, s->target.fd);
  if (down && !s->finished) a |= pump(s, &s->down, s->target.fd, s->user.fd);
  if (a) s->last_activity_ms = now_ms();
  if (!s->finished && s->up.shut && s->down.shut) s->finished = 1;
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
  int with_idle_timeout = 0; // live sessions that have one: only then does the thread wake up by itself
  int64_t last_idle_check = now_ms();
  for (;;) {
    int n = epoll_wait(epoll_fd, events, MAX_EVENTS, with_idle_timeout > 0 ? IDLE_CHECK_MS : -1);
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
        if (s->idle_timeout_ms > 0) with_idle_timeout++;
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
    int idle_check = with_idle_timeout > 0 && now - last_idle_check >= IDLE_CHECK_MS;
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
      if (s->finished) {
        *link = s->next;
        if (s->idle_timeout_ms > 0) with_idle_timeout--;
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

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int user_fd, target_fd;
  int64_t idle = 0, pipe_size = 0;
  napi_valuetype cb_type = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &cb_type);
  if (argc < 5 || get_fd(env, argv[0], &user_fd) < 0 || get_fd(env, argv[1], &target_fd) < 0 ||
      napi_get_value_int64(env, argv[2], &idle) != napi_ok || napi_get_value_int64(env, argv[3], &pipe_size) != napi_ok ||
      cb_type != napi_function || user_fd == target_fd) {
    napi_throw_type_error(env, NULL, "splice relay: start(userFd, targetFd, idleTimeoutMs, pipeSize, done)");
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
  if (own_target < 0 || open_pipe(s, &s->up, (int)pipe_size) < 0 || open_pipe(s, &s->down, (int)pipe_size) < 0) {
    int err = errno;
    if (own_user >= 0) close(own_user);
    if (own_target >= 0) close(own_target);
    close_pipes(&s->up);
    close_pipes(&s->down);
    free(s);
    return throw_errno(env, err, own_target < 0 ? "dup" : "pipe");
  }
  s->user = (struct endpoint){s, own_user};
  s->target = (struct endpoint){s, own_target};

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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
