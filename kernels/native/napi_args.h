// osp-lab native kernel pack: reading N-API call arguments, shared by every file with exports (kernels.h, gemm_napi.cc).
// A bad argument throws Error; each export's wrapper turns it into a JavaScript error (code OSP_NATIVE).
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

namespace osp {
namespace napi {

struct Error {
  std::string message;
};

struct Args {
  napi_env env;
  size_t argc = 24;
  napi_value argv[24];

  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr); }

  napi_value at(size_t i) const {
    if (i >= argc) throw Error{"missing argument " + std::to_string(i)};
    return argv[i];
  }

  template <typename T>
  T* array(size_t i, napi_typedarray_type want, int64_t length, const char* name) const {
    bool is = false;
    napi_is_typedarray(env, at(i), &is);
    if (!is) throw Error{std::string(name) + ": expected a typed array"};
    napi_typedarray_type type;
    size_t len;
    void* data;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(env, at(i), &type, &len, &data, &buf, &off);
    if (type != want) throw Error{std::string(name) + ": wrong typed array type"};
    if (length >= 0 && static_cast<int64_t>(len) != length) {
      throw Error{std::string(name) + ": length " + std::to_string(len) + ", expected " + std::to_string(length)};
    }
    return static_cast<T*>(data);
  }
  float* f32(size_t i, int64_t length, const char* name) const { return array<float>(i, napi_float32_array, length, name); }
  int32_t* i32(size_t i, int64_t length, const char* name) const { return array<int32_t>(i, napi_int32_array, length, name); }
  int32_t* i32any(size_t i, const char* name, size_t* len) const {
    bool is = false;
    napi_is_typedarray(env, at(i), &is);
    if (!is) throw Error{std::string(name) + ": expected an Int32Array"};
    napi_typedarray_type type;
    void* data;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(env, at(i), &type, len, &data, &buf, &off);
    if (type != napi_int32_array) throw Error{std::string(name) + ": expected an Int32Array"};
    return static_cast<int32_t*>(data);
  }
  bool isNull(size_t i) const {
    napi_valuetype t;
    napi_typeof(env, at(i), &t);
    return t == napi_null || t == napi_undefined;
  }
  int64_t i64(size_t i) const {
    double v;
    if (napi_get_value_double(env, at(i), &v) != napi_ok) throw Error{"argument " + std::to_string(i) + ": expected a number"};
    return static_cast<int64_t>(v);
  }
  // Whether argument i was given (not missing, null or undefined).
  bool present(size_t i) const { return i < argc && !isNull(i); }
  std::string str(size_t i) const {
    char buf[64];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, at(i), buf, sizeof(buf), &len) != napi_ok) {
      throw Error{"argument " + std::to_string(i) + ": expected a string"};
    }
    return std::string(buf, len);
  }
  // A Float32Array of any length, and its length.
  float* f32any(size_t i, const char* name, int64_t* length) const {
    bool is = false;
    napi_is_typedarray(env, at(i), &is);
    napi_typedarray_type type = napi_int8_array;
    size_t len = 0;
    void* data = nullptr;
    napi_value buf;
    size_t off;
    if (is) napi_get_typedarray_info(env, at(i), &type, &len, &data, &buf, &off);
    if (!is || type != napi_float32_array) throw Error{std::string(name) + ": expected a Float32Array"};
    *length = static_cast<int64_t>(len);
    return static_cast<float*>(data);
  }
  double f64(size_t i) const {
    double v;
    if (napi_get_value_double(env, at(i), &v) != napi_ok) throw Error{"argument " + std::to_string(i) + ": expected a number"};
    return v;
  }
};

}  // namespace napi
}  // namespace osp
