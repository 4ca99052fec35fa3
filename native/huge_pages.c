// The one system call kernels/huge_pages.ts needs and Node cannot make:
// madvise(MADV_HUGEPAGE) over a WebAssembly.Memory, so that Linux backs it
// with 2 MB pages where transparent huge pages are in "madvise" mode. Why,
// and what the pool does with it: kernels/huge_pages.ts. Optional: npm
// install builds it with node-gyp when it can; the pool runs without it.
#include <errno.h>
#include <stdint.h>
#include <node_api.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* The first byte of a typed array (a view of the memory's buffer), or NULL. */
static void* first_byte(napi_env env, napi_value view) {
  void* data = NULL;
  size_t length = 0;
  if (napi_get_typedarray_info(env, view, NULL, &length, &data, NULL, NULL) != napi_ok || length == 0) return NULL;
  return data;
}

/* advise(view, bytes): 0, or the errno of madvise(view's first byte, bytes, MADV_HUGEPAGE). */
static napi_value advise(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double bytes = 0;
  int result = EINVAL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void* start = argc == 2 ? first_byte(env, argv[0]) : NULL;
  if (start != NULL && napi_get_value_double(env, argv[1], &bytes) == napi_ok && bytes >= 1 && bytes <= 1e15) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    result = madvise(start, (size_t)bytes, MADV_HUGEPAGE) == 0 ? 0 : errno;
#else
    result = ENOSYS;
#endif
  }
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

/* address(view): the view's first byte as a number (exact: user addresses are below 2^53), or -1. */
static napi_value address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void* start = argc == 1 ? first_byte(env, argv[0]) : NULL;
  napi_value out;
  napi_create_double(env, start == NULL ? -1 : (double)(uintptr_t)start, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "advise", NAPI_AUTO_LENGTH, advise, NULL, &fn);
  napi_set_named_property(env, exports, "advise", fn);
  napi_create_function(env, "address", NAPI_AUTO_LENGTH, address, NULL, &fn);
  napi_set_named_property(env, exports, "address", fn);
  return exports;
}
