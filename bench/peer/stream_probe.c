// What two threads' weight stream can read on this machine, by load width,
// and how far apart the machine put the two cores (bench/RESULTS.md, "Where
// the two vCPUs are"). Not part of the build; a probe to redo by hand:
//
//   gcc -O2 -march=native -pthread -o stream_probe bench/peer/stream_probe.c
//   ./stream_probe roundtrip     # ns for a cache line to go to the other core and back
//   ./stream_probe 128           # GB/s, 128-bit loads, a multiply then an add (this project's WebAssembly loop)
//   ./stream_probe 128-prefetch  # the same with a prefetch 4 KB ahead (WebAssembly has no prefetch)
//   ./stream_probe 512           # GB/s, 512-bit loads and fused multiply-adds (run.c's loop under -march=native)
//
// Threads 0 and 1 are pinned to CPUs 0 and 1. A stream: each thread sums its
// half of a 64 MB buffer on 2 MB pages (twice the L3 here: a token's float32
// weights are 61 MB at 15M), between two barriers; the median of 15 passes.
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES (64ul << 20)
#define PASSES 15

static float *buffer;
static int mode; // 0: 128, 1: 128-prefetch, 2: 512
static pthread_barrier_t barrier;
static volatile float sink[2];
static double seconds[PASSES];
static _Alignas(64) atomic_int line;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static int ascending(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// four chains of 128-bit multiply, then add: one 64-byte line a step
static float sum128(const float *p, size_t n, int prefetch) {
  __m128 a = _mm_setzero_ps(), b = a, c = a, d = a, x = _mm_set1_ps(1.0001f);
  for (size_t i = 0; i < n; i += 16) {
    if (prefetch) _mm_prefetch((const char *)(p + i + 1024), _MM_HINT_T0);
    a = _mm_add_ps(a, _mm_mul_ps(_mm_load_ps(p + i), x));
    b = _mm_add_ps(b, _mm_mul_ps(_mm_load_ps(p + i + 4), x));
    c = _mm_add_ps(c, _mm_mul_ps(_mm_load_ps(p + i + 8), x));
    d = _mm_add_ps(d, _mm_mul_ps(_mm_load_ps(p + i + 12), x));
  }
  float o[4];
  _mm_storeu_ps(o, _mm_add_ps(_mm_add_ps(a, b), _mm_add_ps(c, d)));
  return o[0] + o[1] + o[2] + o[3];
}

// four chains of 512-bit fused multiply-adds: four lines a step
__attribute__((target("avx512f"))) static float sum512(const float *p, size_t n) {
  __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a, x = _mm512_set1_ps(1.0001f);
  for (size_t i = 0; i < n; i += 64) {
    a = _mm512_fmadd_ps(_mm512_load_ps(p + i), x, a);
    b = _mm512_fmadd_ps(_mm512_load_ps(p + i + 16), x, b);
    c = _mm512_fmadd_ps(_mm512_load_ps(p + i + 32), x, c);
    d = _mm512_fmadd_ps(_mm512_load_ps(p + i + 48), x, d);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

static void *stream(void *arg) {
  int id = (int)(long)arg;
  pin(id);
  size_t n = BYTES / sizeof(float) / 2;
  const float *half = buffer + id * n;
  for (int pass = 0; pass <= PASSES; pass++) { // pass 0 untimed
    pthread_barrier_wait(&barrier);
    double started = now();
    sink[id] += mode == 2 ? sum512(half, n) : sum128(half, n, mode == 1);
    pthread_barrier_wait(&barrier);
    if (id == 0 && pass > 0) seconds[pass - 1] = now() - started;
  }
  return 0;
}

// the other side of the round trip: answer each odd value with the next even one
#define TRIPS 200000
static void *answer(void *arg) {
  (void)arg;
  pin(1);
  for (int i = 1; i <= TRIPS; i++) {
    while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i - 1);
    atomic_store_explicit(&line, 2 * i, memory_order_release);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  pthread_t threads[2];
  if (!strcmp(what, "roundtrip")) {
    pin(0);
    pthread_create(&threads[0], 0, answer, 0);
    double started = now();
    for (int i = 1; i <= TRIPS; i++) {
      atomic_store_explicit(&line, 2 * i - 1, memory_order_release);
      while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i);
    }
    double ns = (now() - started) * 1e9 / TRIPS;
    pthread_join(threads[0], 0);
    printf("roundtrip %.1f ns\n", ns);
    return 0;
  }
  if (!strcmp(what, "128")) mode = 0;
  else if (!strcmp(what, "128-prefetch")) mode = 1;
  else if (!strcmp(what, "512")) mode = 2;
  else {
    fprintf(stderr, "stream_probe: expected roundtrip, 128, 128-prefetch or 512, got '%s'\n", what);
    return 2;
  }
  buffer = aligned_alloc(2ul << 20, BYTES);
  if (buffer == 0) return 1;
  madvise(buffer, BYTES, MADV_HUGEPAGE);
  for (size_t i = 0; i < BYTES / sizeof(float); i++) buffer[i] = (float)(i & 1023) * 1e-3f;
  pthread_barrier_init(&barrier, 0, 2);
  for (long i = 0; i < 2; i++) pthread_create(&threads[i], 0, stream, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(threads[i], 0);
  qsort(seconds, PASSES, sizeof seconds[0], ascending);
  printf("%s %.1f GB/s\n", what, BYTES / seconds[PASSES / 2] / 1e9);
  return 0;
}
