#include "meshd/common/errno_text.hpp"

#include <cstring>

namespace meshd {

std::string errno_text(int err) {
  return std::strerror(err < 0 ? -err : err);
}

}  // namespace meshd
