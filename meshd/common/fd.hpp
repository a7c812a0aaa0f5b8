// Owns one file descriptor; closes it on destruction. Move-only.
#pragma once

#include <utility>

#include "meshd/common/result.hpp"

namespace meshd {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();
  // A new descriptor for the same object (F_DUPFD_CLOEXEC).
  Result<Fd> dup() const;
  // Same for a descriptor owned by someone else (e.g. a skeleton's map fd).
  static Result<Fd> dup_of(int fd);

 private:
  int fd_ = -1;
};

}  // namespace meshd
