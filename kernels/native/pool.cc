// osp-lab native kernel pack: the thread pool's code (class Pool in pool.h) and pool(), the addon's instance.
//
// Workers wait for a new job generation, run their chunk (n * index / parts up to n * (index + 1) / parts;
// the calling thread runs chunk 0) and count themselves done; run returns when every chunk is done.

#include "pool.h"

#include <algorithm>

namespace osp {

void Pool::resize(int threads) {
  std::lock_guard<std::mutex> busy(run_);
  stop();
  stopping_ = false;
  // New workers start at the current generation: the last job (already finished) is not theirs to run.
  const uint64_t current = generation_;
  for (int i = 1; i < std::max(1, threads); i++) workers_.emplace_back([this, i, current] { loop(i, current); });
}

void Pool::run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  const int parts = static_cast<int>(std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(1, grain))));
  // One job at a time: a second caller (another worker thread's tfjs) runs its job inline.
  std::unique_lock<std::mutex> busy(run_, std::try_to_lock);
  if (parts <= 1 || !busy.owns_lock()) {
    f(0, n);
    return;
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = &f;
    n_ = n;
    parts_ = parts;
    pending_ = parts - 1;
    generation_++;
  }
  cv_.notify_all();
  f(0, n / parts);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void Pool::loop(int index, uint64_t seen) {
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    int parts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      n = n_;
      parts = parts_;
    }
    if (index < parts) (*job)(n * index / parts, n * (index + 1) / parts);
    if (index < parts) {
      std::unique_lock<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void Pool::stop() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

Pool& pool() {
  static Pool p(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return p;
}

}  // namespace osp
