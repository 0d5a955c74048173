// osp-lab native kernel pack: the addon's thread pool, declared (pool.cc defines it).
//
// Pool::run is a parallel_for over [0, n) in contiguous chunks, the calling thread taking a share, one job
// at a time (a second caller runs its job inline). pool() is the addon's one instance: the kernels split
// their loops over it, and the portable GEMM gets it through gemmSetPool (bindings.cc). kGrain is the size
// below which the elementwise and fused kernels stay on the calling thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace osp {

// Thread pool: parallel_for over [0, n) in contiguous chunks, the calling thread takes a share.
class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads);

  // Runs f(begin, end) over chunks of [0, n); chunks smaller than `grain` are not split further.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

 private:
  void loop(int index, uint64_t seen);
  void stop();

  std::vector<std::thread> workers_;
  std::mutex run_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

// The addon's pool, created on first use with one thread per core (setThreads / setPoolThreads resize it).
Pool& pool();

// Elementwise work below this many elements runs on the calling thread.
constexpr int64_t kGrain = 1 << 15;

}  // namespace osp
