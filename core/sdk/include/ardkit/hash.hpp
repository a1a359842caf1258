#pragma once
#include <cstddef>
#include <cstdint>

namespace ardkit {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;

// 64-bit FNV-1a of `size` bytes, continuing from `h`: stable across platforms and library
// versions, unlike std::hash, so it can name things on disk (run ids, evaluation state).
inline uint64_t fnv1a(const void* data, size_t size, uint64_t h = kFnvOffset) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= bytes[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace ardkit
