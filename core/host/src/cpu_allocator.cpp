#include "ardkit/host/cpu_allocator.hpp"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include "ardkit/error.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ardkit {
namespace {

constexpr size_t kSmallest = size_t{64} << 10;  // below: malloc's own free lists do well

// Four classes per power of two: 64, 80, 96, 112, 128, 160, ... KiB.
size_t size_class(size_t n) {
  size_t power = kSmallest;
  while (power * 2 <= n)
    power *= 2;
  const size_t quarter = power / 4;
  return (n + quarter - 1) / quarter * quarter;
}

// Every block starts with a header holding its size class, so that one deleter (LibTorch's
// raw_deleter contract) serves small and cached blocks alike; 64 bytes keep the data as aligned
// as LibTorch's own allocator does.
constexpr size_t kHeader = 64;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    if (n == 0)  // as LibTorch's own allocator: an empty tensor has no data pointer
      return {nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU)};
    void* p = n < kSmallest ? fresh(n) : take(size_class(n));
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override {
    return &release;
  }

  static CachingCpuAllocator& instance() {
    static auto* allocator = new CachingCpuAllocator;  // never destroyed: tensors may outlive main
    return *allocator;
  }

  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = limit;
    trim(limit_);
  }
  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(cached_), static_cast<int64_t>(live_), static_cast<int64_t>(hits_),
            static_cast<int64_t>(misses_)};
  }
  void release_all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    trim(0);
  }

 private:
  static void* fresh(size_t bytes) {
    auto* base = static_cast<char*>(c10::alloc_cpu(bytes + kHeader));
    *reinterpret_cast<size_t*>(base) = bytes;
    return base + kHeader;
  }
  static size_t size_of(void* p) {
    return *reinterpret_cast<size_t*>(static_cast<char*>(p) - kHeader);
  }
  static void free_block(void* p) {
    c10::free_cpu(static_cast<char*>(p) - kHeader);
  }

  void* take(size_t bytes) const {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_ += bytes;
      auto& list = free_[bytes];
      if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
        cached_ -= bytes;
        ++hits_;
        return p;
      }
      ++misses_;
    }
    try {
      return fresh(bytes);
    } catch (const c10::Error&) {
      // Out of memory with blocks held: give them back and try once more.
      release_all();
    }
    try {
      return fresh(bytes);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      live_ -= bytes;
      throw;
    }
  }

  static void release(void* p) {
    if (!p)
      return;
    const size_t bytes = size_of(p);
    if (bytes < kSmallest) {
      free_block(p);
      return;
    }
    const auto& self = instance();
    std::unique_lock<std::mutex> lock(self.mutex_);
    self.live_ -= bytes;
    if (self.cached_ + bytes > self.limit_) {
      lock.unlock();
      free_block(p);
      return;
    }
    self.free_[bytes].push_back(p);
    self.cached_ += bytes;
  }

  // Frees cached blocks until at most `keep` bytes are cached.
  void trim(size_t keep) const {
    for (auto it = free_.begin(); cached_ > keep && it != free_.end(); ++it)
      while (cached_ > keep && !it->second.empty()) {
        free_block(it->second.back());
        it->second.pop_back();
        cached_ -= it->first;
      }
  }

  mutable std::mutex mutex_;
  mutable std::unordered_map<size_t, std::vector<void*>> free_;
  mutable size_t cached_ = 0, live_ = 0, hits_ = 0, misses_ = 0;
  size_t limit_ = size_t{4} << 30;
};

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

std::atomic<bool> installed{false};

}  // namespace

void install_caching_cpu_allocator(int64_t limit_bytes) {
  if (kSanitized)
    return;
  auto& allocator = CachingCpuAllocator::instance();
  allocator.set_limit(static_cast<size_t>(std::max<int64_t>(0, limit_bytes)));
  if (!installed.exchange(true))
    c10::SetCPUAllocator(&allocator, /*priority=*/100);
}

void install_caching_cpu_allocator_from_environment() {
  const char* text = std::getenv("ARDKIT_CPU_CACHE_MB");
  int64_t megabytes = 4096;
  if (text && *text) {
    char* end = nullptr;
    errno = 0;
    megabytes = std::strtoll(text, &end, 10);
    if (*end != '\0' || errno != 0 || megabytes < 0 || megabytes > (int64_t{1} << 30))
      throw_config_error(fmt::format(
          "ARDKIT_CPU_CACHE_MB=\"{}\": not a size in MiB; unset it (4096) or give a whole number, "
          "0 to turn the CPU tensor cache off",
          text));
  }
  if (megabytes > 0)
    install_caching_cpu_allocator(megabytes << 20);
}

bool caching_cpu_allocator_installed() {
  return installed;
}

CpuCacheStats caching_cpu_allocator_stats() {
  return CachingCpuAllocator::instance().stats();
}

void release_cached_cpu_memory() {
  CachingCpuAllocator::instance().release_all();
}

}  // namespace ardkit
