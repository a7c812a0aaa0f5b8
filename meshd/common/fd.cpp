#include "meshd/common/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "meshd/common/errno_text.hpp"

namespace meshd {

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Fd> Fd::dup() const {
  return dup_of(fd_);
}

Result<Fd> Fd::dup_of(int original) {
  int fd = ::fcntl(original, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail("dup_failed", "dup of fd: " + errno_text(errno));
  return Fd(fd);
}

}  // namespace meshd
